"""The version of mialab, importable without importing the package's modules."""

__version__ = "0.1.0"
