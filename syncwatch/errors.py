"""Errors of the shared core. Messages say what failed, where, and how to fix it."""

from __future__ import annotations


class SyncwatchError(Exception):
    """Base class of every error Syncwatch raises on purpose."""


class StoreError(SyncwatchError):
    """The ClickHouse store could not be reached or refused a statement."""


class StoreLockedError(StoreError):
    """Another process holds the embedded chDB store."""


class MigrationError(StoreError):
    """A schema migration failed to apply."""
