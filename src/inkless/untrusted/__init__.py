"""Files from outside the government (the public intake window, replies to secure pickup): checked before use.

:mod:`inkless.untrusted.files` types a file by its content, opens PDFs only through pdfium under the
process-wide lock, re-encodes images to PDF after a pixel check made on the header alone, and asks an
optional virus scanner (:mod:`inkless.untrusted.clamd`).
"""
