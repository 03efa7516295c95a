"""The runtime: the core services wired to one store, one event bus and one executor.

The CLI's local backend, the HTTP server and (later) the workers each build one Runtime from
Settings; they differ only in which loop executes runs.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from agent_sdk.core.events import EventBus
from agent_sdk.core.executor import Executor
from agent_sdk.core.runs import RunService
from agent_sdk.core.sessions import SessionService
from agent_sdk.records import MigrationState

if TYPE_CHECKING:
    from agent_sdk.config import Settings
    from agent_sdk.engine.agent import AgentRegistry
    from agent_sdk.store.base import Store


class Runtime:
    def __init__(
        self,
        settings: Settings,
        *,
        store: Store | None = None,
        registry: AgentRegistry | None = None,
        migrate: bool = True,
    ) -> None:
        from agent_sdk.engine.agent import AgentRegistry
        from agent_sdk.store import store_from_settings

        self.settings = settings
        self.store = store or store_from_settings(settings)
        if migrate:
            self.store.migrate()
        self.registry = registry or AgentRegistry(settings.agents, settings.agents_file)
        self.bus = EventBus(settings.stream_queue_size)
        self.executor = Executor(settings, self.store, self.bus, self.registry)
        self.runs = RunService(settings, self.store, self.bus, self.registry, self.executor)
        self.sessions = SessionService(self.store)

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self.executor.attach(loop)

    def migrate(self) -> list[MigrationState]:
        return self.store.migrate()

    def migration_status(self) -> list[MigrationState]:
        return self.store.migration_status()

    def close(self, *, wait: bool = True, timeout: float | None = None) -> None:
        if wait:
            self.executor.wait_idle(timeout)
        self.executor.close()
        self.store.close()
