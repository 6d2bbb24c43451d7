"""Foundations every layer may use: errors, units (format and parse), atomic io, tables."""

__all__: list[str] = []
