"""Configuration and client factories: the layer every adapter (``streams``, ``consumers``) and
entry point (``limitsync``) may import.

``settings`` reads ``LIMITSYNC_*`` into one ``Settings``; ``clients`` turns it into Kafka and
Redis client configurations; ``topics`` creates the topics the worker and the tools use. None
of these imports the core, an adapter or an entry point (import-linter holds it, see
``[tool.importlinter]`` in pyproject.toml).
"""
