"""The catalog: data the advisor looks things up in, GPUs (:mod:`.gpus`) and model presets (:mod:`.presets`)."""

__all__: list[str] = []
