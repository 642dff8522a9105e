"""Scheduled functions and crons.

scheduler.py  `ctx.scheduler` and the jobs of `_scheduled_functions`
worker.py     the loop that runs due jobs and crons (one per server process)
claims.py     which node runs which scheduled action (`_scheduler_claims`)
crons.py      `cron_jobs()`: the crons an app declares and their schedules
"""

from __future__ import annotations

from owlat.runtime.scheduler.crons import CronJobs, cron_jobs
from owlat.runtime.scheduler.scheduler import Scheduler
from owlat.runtime.scheduler.worker import SchedulerWorker

__all__ = ["CronJobs", "Scheduler", "SchedulerWorker", "cron_jobs"]
