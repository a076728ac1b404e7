"""The ``inkless`` command."""
