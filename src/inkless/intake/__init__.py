"""The public intake window (受付窓口): anyone submits documents to an office without an account.

The e-mail address is proven with a one-time code; an accepted submission gets a receipt number
(受付番号), a 受付証明 PDF sealed with the office's seal and time-stamped, and lands in the office
inbox marked as external and e-mail-verified. Received and sent faxes invite their senders here.
"""
