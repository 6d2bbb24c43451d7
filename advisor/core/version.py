"""The package version (one place; reports and ``--version`` read it here)."""

__all__ = ["__version__"]

__version__ = "0.1.0"
