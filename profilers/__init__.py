"""The runtime: measure or replay one plan on one device. Never imports ``advisor``."""

__all__: list[str] = []
