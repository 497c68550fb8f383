"""Runs decided by the service: incremental from the last success, full when one is due."""

from __future__ import annotations

from datetime import timedelta

import pytest

from reconciler import service
from reconciler.loader import load_rules
from syncwatch.store import Store
from tests.conftest import REPO

RULE = next(r for r in load_rules(REPO / "rules") if r.name == "psa_vs_erp_projects")


def test_runs_are_incremental_between_full_runs(store: Store) -> None:
    assert service.run_one(store, RULE).full  # no watermark yet
    assert not service.run_one(store, RULE).full
    assert service.run_one(store, RULE, full=True).full


def test_a_full_run_is_forced_when_the_last_one_is_old(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    assert service.run_one(store, RULE).full
    monkeypatch.setattr(service, "FULL_RUN_EVERY", timedelta(0))
    assert service.run_one(store, RULE).full, "grace expiries are only caught by full runs"
