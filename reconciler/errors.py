"""Errors of the reconciler. Messages say what failed, where, and how to fix it."""

from __future__ import annotations

from syncwatch.errors import SyncwatchError


class ReconcilerError(SyncwatchError):
    """Base class of every error the reconciler raises on purpose."""


class RuleError(ReconcilerError):
    """A rule pack does not load: every problem of the pack, each as `file:line:col: field: message`."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} in the rules:\n  " + "\n  ".join(self.problems))
