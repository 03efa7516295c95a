"""Queues by URL scheme: ``open_queue("sqlite:///path/queue.db")``, ``open_queue("memory://")``.

Backends are looked up lazily in an alias table (scheme -> "module:Class"), so an optional
driver is imported only when its queue is opened. A backend whose driver is missing names the
extra that installs it.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent_sdk.errors import ConfigError

if TYPE_CHECKING:
    from agent_sdk.config import Settings
    from agent_sdk.queue.base import Queue

QUEUE_ALIASES: dict[str, str] = {
    "sqlite": "agent_sdk.queue.sqlite:SQLiteQueue",
    "memory": "agent_sdk.queue.memory:MemoryQueue",
    "redis": "agent_sdk.queue.redis:RedisQueue",
    "sqs": "agent_sdk.queue.sqs:SQSQueue",
    "kafka": "agent_sdk.queue.kafka:KafkaQueue",
}
# Backends that need a driver: the extra of pyproject.toml that installs it.
QUEUE_EXTRAS: dict[str, str] = {"redis": "redis", "sqs": "sqs", "kafka": "kafka"}


def queue_class(scheme: str) -> type[Queue]:
    """The class of a queue backend, imported on first use."""
    target = QUEUE_ALIASES.get(scheme)
    if target is None:
        close = difflib.get_close_matches(scheme, QUEUE_ALIASES, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "known: " + ", ".join(QUEUE_ALIASES)
        raise ConfigError(f"unknown queue backend {scheme!r}", hint=hint)
    module_name, cls_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:  # our own module: a backend announced but not shipped yet
            available = [s for s in QUEUE_ALIASES if s not in QUEUE_EXTRAS or _shipped(s)]
            raise ConfigError(
                f"queue backend {scheme!r} is not available in this version of agent-sdk",
                hint="available: " + ", ".join(available),
            ) from None
        extra = QUEUE_EXTRAS.get(scheme, scheme)
        raise ConfigError(
            f"queue backend {scheme!r} needs the {exc.name!r} package",
            hint=f"pip install 'agent-sdk[{extra}]'",
        ) from None
    cls: type[Queue] = getattr(module, cls_name)
    return cls


def _shipped(scheme: str) -> bool:
    module_name = QUEUE_ALIASES[scheme].split(":")[0]
    return importlib.util.find_spec(module_name) is not None


def open_queue(url: str, **options: Any) -> Queue:
    """Open the queue a URL names: its scheme picks the backend, the backend reads the rest."""
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    queue: Queue = queue_class(scheme).from_url(url, **options)  # type: ignore[attr-defined]
    return queue


def queue_db_path(settings: Settings) -> Path:
    """AGENT_SDK_QUEUE_DB_PATH, a relative path resolved against the data directory."""
    return settings.queue_sqlite_path


def queue_from_settings(settings: Settings) -> Queue:
    """The queue AGENT_SDK_QUEUE_BACKEND names, configured from the settings."""
    backend = settings.queue.backend
    if backend == "sqlite":
        from agent_sdk.queue.sqlite import SQLiteQueue

        return SQLiteQueue(queue_db_path(settings), busy_timeout=settings.store.sqlite_busy_timeout)
    if backend == "memory":
        from agent_sdk.queue.memory import MemoryQueue

        return MemoryQueue()
    # Later backends build themselves from the settings they need (URLs, topics, ...).
    queue: Queue = queue_class(backend).from_settings(settings)  # type: ignore[attr-defined]
    return queue


__all__ = ["QUEUE_ALIASES", "QUEUE_EXTRAS", "open_queue", "queue_class", "queue_from_settings"]
