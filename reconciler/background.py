"""The reconciler's schedule as a background service of the API process (embedded mode)."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler

from reconciler import scheduler, service
from reconciler.alerts import Notifier
from reconciler.loader import load_rules
from reconciler.rule_shards import Share
from reconciler.run_lease import lease_for
from reconciler.runner import DEFAULT_TIMEOUT_SECONDS
from reconciler.scheduler import ScheduledJob
from syncwatch.store import Store

log = logging.getLogger(__name__)


class ScheduledReconciler:
    """Loads the rule packs, then runs each rule on its schedule (or every `every`, if given)."""

    def __init__(self, rules_dir: Path, every: str = "", share: Share | None = None,
                 kpi_state_every: timedelta | None = None,
                 timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS) -> None:
        self.pack = load_rules(rules_dir)  # a broken pack stops start-up, with every problem
        self.rules = service.runnable(self.pack)
        self.kpi_state_every = kpi_state_every
        self.notifier = Notifier.from_file(rules_dir / "alerts.yaml")
        self.every = every
        self.share = share or Share()
        self.timeout_seconds = timeout_seconds
        self._scheduler: BackgroundScheduler | None = None

    def start(self, store: Store) -> None:
        jobs = service.scheduled_jobs(store, self.rules, self.notifier, share=self.share,
                                      lease=lease_for(store, self.share), timeout_seconds=self.timeout_seconds)
        if self.every:
            jobs = [ScheduledJob(job.name, self.every, job.run) for job in jobs]
        if self.kpi_state_every:
            jobs += service.kpi_state_jobs(store, self.pack, self.kpi_state_every, share=self.share)
        self._scheduler = scheduler.start(jobs)

    def stop(self) -> None:
        if self._scheduler is not None:
            scheduler.stop(self._scheduler, wait=True)
            self._scheduler = None
        self.notifier.close(timeout=10)
