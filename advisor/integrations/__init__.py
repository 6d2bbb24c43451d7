"""Integrations with training frameworks (``advisor.integrations.hf``: the Hugging Face
``Trainer``). They sit above the API and call only :mod:`advisor.api`."""
