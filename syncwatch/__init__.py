"""Syncwatch shared core: settings, store, schema, canonical model and the CLI."""

__version__ = "0.1.0"
