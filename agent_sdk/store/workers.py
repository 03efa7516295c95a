"""The WorkerStore protocol: the registry of queue-mode worker processes and their heartbeats.

Not tenant data: a worker leases jobs of every org, so these methods take no org. A row is only
a claim of liveness; readers decide with :func:`is_alive` (a heartbeat younger than three
leases), because a worker killed with -9 never removes its row.

Implementation (both engines): :class:`agent_sdk.store._sql_mixins.SQLWorkerQueries`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    host: str
    pid: int
    started_at: str
    heartbeat_at: str
    runs_in_flight: int = 0
    # "ok", or what keeps a live worker from working ("queue unreachable")
    health: str = "ok"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkerInfo:
        return cls(
            name=str(data["name"]),
            host=str(data["host"]),
            pid=int(data["pid"]),
            started_at=str(data["started_at"]),
            heartbeat_at=str(data["heartbeat_at"]),
            runs_in_flight=int(data.get("runs_in_flight") or 0),
            health=str(data.get("health") or "ok"),
        )


class WorkerStore(Protocol):
    def register_worker(self, worker: WorkerInfo) -> None:
        """Insert or replace the row of ``worker.name`` (a restarted worker reuses its name)."""
        ...

    def heartbeat_worker(
        self, name: str, when: str, runs_in_flight: int, health: str = "ok"
    ) -> bool:
        """Record a heartbeat; False if the worker has no row (it was removed meanwhile)."""
        ...

    def remove_worker(self, name: str) -> None: ...

    def list_workers(self) -> list[WorkerInfo]:
        """Every registered worker, live or stale, by name."""
        ...


def is_alive(worker: WorkerInfo, stale_before: str) -> bool:
    """Whether the worker beat at or after ``stale_before`` (an ISO time like ``utcnow()``)."""
    return worker.heartbeat_at >= stale_before


__all__ = ["WorkerInfo", "WorkerStore", "is_alive"]
