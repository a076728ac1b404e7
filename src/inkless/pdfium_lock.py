"""The one lock for every pdfium call in a process.

pdfium (through pypdfium2) is not thread-safe, not even across documents, and
inkless renders PDFs from web request threads, background workers and fax line
threads at once: every feature takes this lock around pdfium calls.
"""

from __future__ import annotations

import threading

PDFIUM_LOCK = threading.RLock()
