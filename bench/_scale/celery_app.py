"""The Celery side of bench/scale_out.py: one no-op task, Redis as broker and result backend.

Configured by environment so the worker (``celery -A celery_app worker``) and the submitting
process agree: ``BENCH_CELERY_BROKER`` and ``BENCH_CELERY_RESULTS`` are Redis URLs, and the
results go to a database of their own so that counting them is one DBSIZE.
"""

from __future__ import annotations

import os

from celery import Celery

QUEUE = "bench-noop"

app = Celery(
    "bench",
    broker=os.environ.get("BENCH_CELERY_BROKER", "redis://127.0.0.1:6379/13"),
    backend=os.environ.get("BENCH_CELERY_RESULTS", "redis://127.0.0.1:6379/14"),
)
# Celery's defaults otherwise: early acknowledgement, prefetch multiplier 4, JSON.
app.conf.task_default_queue = QUEUE
app.conf.broker_connection_retry_on_startup = True


@app.task(name="bench.noop")
def noop(i: int) -> int:
    return i
