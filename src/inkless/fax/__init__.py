"""The fax bridge: spandsp terminals, TIFF-F imaging, line drivers, and the fax service."""
