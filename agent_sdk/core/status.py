"""What an operator asks first: is the store up, how deep is the queue, which workers are alive.

``status(runtime)`` answers for ``agent-sdk status`` (through the local backend) and for
``GET /v1/status``. A worker is alive while its heartbeat (every third of
``AGENT_SDK_WORKER_LEASE``) is younger than three leases, the same bound recovery uses for the
heartbeat of a run; an older row is a worker that died without removing itself (kill -9), and
is counted as stale.

A worker writes its own health with each heartbeat, but it cannot write at all when the store is
unreachable from it (a network cut, a full disk) or when it is stalled. So a live worker whose
last heartbeat is over a lease old (three beats missed) shows ``heartbeat late`` instead of what
it wrote last: it is alive as far as anyone can tell, and not working.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from agent_sdk.errors import AgentSDKError
from agent_sdk.store.workers import WorkerInfo, is_alive
from agent_sdk.times import iso

if TYPE_CHECKING:
    from agent_sdk.core.runtime import Runtime


LATE = "heartbeat late"


def _ago(seconds: float) -> str:
    return iso(datetime.now(UTC) - timedelta(seconds=seconds))


def stale_before(lease_seconds: float) -> str:
    """The heartbeat time before which a worker counts as dead."""
    return _ago(3 * lease_seconds)


def live_workers(runtime: Runtime) -> tuple[list[WorkerInfo], int]:
    """The workers alive now (one whose heartbeat is late marked so), and how many registered
    ones are stale."""
    lease = runtime.settings.worker.lease
    cutoff, late = stale_before(lease), _ago(lease)
    alive, stale = [], 0
    for worker in runtime.store.list_workers():
        if not is_alive(worker, cutoff):
            stale += 1
        elif worker.heartbeat_at < late:
            alive.append(dataclasses.replace(worker, health=LATE))
        else:
            alive.append(worker)
    return alive, stale


def queue_check(runtime: Runtime) -> tuple[str, dict[str, int] | None]:
    """("ok", depth by state) when the queue answers, else (its error code, None)."""
    try:
        depth = runtime.queue.depth()
    except AgentSDKError as exc:
        return exc.code, None
    except Exception:  # a driver error a queue failed to translate still means "down"
        return "unavailable", None
    counts = {
        "ready": depth.ready,
        "delayed": depth.delayed,
        "leased": depth.leased,
        "dead": depth.dead,
    }
    return "ok", counts


def status(runtime: Runtime) -> dict[str, Any]:
    """The deployment's health as a JSON-ready dict (queue depth only in queue mode)."""
    out: dict[str, Any] = {"execution_mode": runtime.settings.execution.mode}
    try:
        runtime.store.check()
        out["store"] = "ok"
    except AgentSDKError as exc:
        out["store"] = exc.code
        out["store_error"] = exc.message
    if runtime.settings.execution.mode == "queue":
        state, depth = queue_check(runtime)
        out["queue"] = {"status": state, **(depth or {})}
    if out["store"] == "ok":
        alive, stale = live_workers(runtime)
        out["workers"] = {
            "alive": [w.to_dict() for w in alive],
            "count": len(alive),
            "stale": stale,
        }
    else:
        out["workers"] = {"alive": [], "count": 0, "stale": 0}
    return out


__all__ = ["LATE", "live_workers", "queue_check", "stale_before", "status"]
