"""inkless: official documents without fax paper or seal ink."""

__version__ = "0.1.0"
