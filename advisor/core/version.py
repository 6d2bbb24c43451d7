"""The package version (one place; reports and ``--version`` read it here)."""

__version__ = "0.1.0"
