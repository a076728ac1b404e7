"""Secure delivery between offices: CMS envelopes, outbox/inbox, receipts, transmission reports."""
