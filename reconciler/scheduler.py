"""APScheduler 3.x wiring: one job per rule, on the rule's interval or cron schedule.

It takes a plain callable per rule, so it does not care which compiler made the rule's SQL;
the CLI and the server compose it with the runner.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from syncwatch.errors import SyncwatchError

log = logging.getLogger(__name__)

# APScheduler's default grace is 1 s: a run that starts later than that (the pool was busy with
# a long rule) is dropped with only a log line. A late reconciliation is better than none, and
# coalescing turns any backlog into one run.
MISFIRE_GRACE_SECONDS = 3600
# Rules run inside ClickHouse; a few threads keep a slow rule from holding up the others.
MAX_WORKERS = 4

Schedule = int | float | timedelta | str
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


class ScheduleError(SyncwatchError):
    """A rule's schedule is neither an interval nor a valid cron expression."""


@dataclass(frozen=True)
class ScheduledJob:
    """``run`` is called on ``schedule``: seconds, a timedelta, '30s'/'5m'/'1h'/'1d', or 5-field cron."""

    name: str
    schedule: Schedule
    run: Callable[[], object]


def trigger_for(schedule: Schedule, timezone: str = "UTC") -> BaseTrigger:
    """The APScheduler trigger of a schedule; cron strings are crontab's five fields."""
    seconds = _interval_seconds(schedule)
    if seconds is not None:
        if seconds <= 0:
            raise ScheduleError(f"schedule {schedule!r}: an interval must be positive")
        return IntervalTrigger(seconds=seconds, timezone=timezone)
    try:
        return CronTrigger.from_crontab(str(schedule), timezone=timezone)
    except ValueError as exc:
        raise ScheduleError(f"schedule {schedule!r} is neither an interval (30s, 5m, 1h, 1d) "
                            f"nor a cron expression (e.g. '*/5 * * * *'): {exc}") from exc


def build_scheduler(jobs: Iterable[ScheduledJob], *, first_run_now: bool = True,
                    misfire_grace_time: int = MISFIRE_GRACE_SECONDS,
                    max_workers: int = MAX_WORKERS) -> BackgroundScheduler:
    """A scheduler (not started) with one job per rule.

    ``first_run_now`` runs interval rules once at start instead of one interval later, so a
    restarted reconciler does not leave findings stale for a whole period.
    """
    scheduler = BackgroundScheduler(
        executors={"default": ThreadPoolExecutor(max_workers)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": misfire_grace_time},
        timezone=UTC,
    )
    scheduler.add_listener(_log_event, EVENT_JOB_ERROR | EVENT_JOB_MISSED)
    for job in jobs:
        trigger = trigger_for(job.schedule)
        first = datetime.now(UTC) if first_run_now and isinstance(trigger, IntervalTrigger) else None
        # Explicit per job too, so a change of defaults cannot quietly bring back the 1 s grace.
        scheduler.add_job(job.run, trigger, id=job.name, name=job.name, replace_existing=True,
                          coalesce=True, max_instances=1, misfire_grace_time=misfire_grace_time,
                          **({"next_run_time": first} if first else {}))
    return scheduler


def start(jobs: Iterable[ScheduledJob], *, first_run_now: bool = True,
          misfire_grace_time: int = MISFIRE_GRACE_SECONDS) -> BackgroundScheduler:
    """Build and start a scheduler in background threads; stop it with ``stop``."""
    scheduler = build_scheduler(jobs, first_run_now=first_run_now, misfire_grace_time=misfire_grace_time)
    scheduler.start()
    log.info("reconciler scheduler started with %d rule(s)", len(scheduler.get_jobs()))
    return scheduler


def stop(scheduler: BackgroundScheduler, wait: bool = True) -> None:
    """Stop scheduling; with ``wait`` the runs in progress finish first."""
    if scheduler.running:
        scheduler.shutdown(wait=wait)


def _interval_seconds(schedule: Schedule) -> float | None:
    if isinstance(schedule, timedelta):
        return schedule.total_seconds()
    if isinstance(schedule, int | float) and not isinstance(schedule, bool):
        return float(schedule)
    match = _DURATION.match(str(schedule))
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)] if match else None


def _log_event(event: JobExecutionEvent) -> None:
    if event.code == EVENT_JOB_MISSED:
        log.warning("rule %s missed its run at %s (beyond the misfire grace time)",
                    event.job_id, event.scheduled_run_time)
    else:
        log.error("rule %s raised: %s", event.job_id, event.exception)
