"""The runtime: the composition root of the core, which wires the services to one store, one
event bus and one executor, and closes what it opened.

The CLI's local backend, the HTTP server and the workers each build one Runtime from Settings;
they differ only in which loop executes runs. Each service receives in its constructor the
dependencies it uses, never the runtime; this module holds no logic beyond that wiring. The agent
registry, the bus, the executor and the queue are built on first use (the services get them as
zero-argument callables): a read-only CLI call (`runs list --local`) then pays for neither
asyncio nor the engine, which is about half of its start-up time.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from agent_sdk.core.orgs import OrgService
from agent_sdk.core.runs import RunService
from agent_sdk.core.sessions import SessionService

if TYPE_CHECKING:
    import asyncio

    from agent_sdk.config import Settings
    from agent_sdk.core.api_keys import KeyService
    from agent_sdk.core.audit import AuditService
    from agent_sdk.core.auth import AuthService
    from agent_sdk.core.deletion import Erasure
    from agent_sdk.core.encryption import EncryptionService
    from agent_sdk.core.events import EventBus
    from agent_sdk.core.executor import Executor
    from agent_sdk.core.redaction import RedactionService
    from agent_sdk.core.residency import ResidencyService
    from agent_sdk.core.retention import RetentionService
    from agent_sdk.engine.agent import AgentRegistry
    from agent_sdk.queue.base import Queue
    from agent_sdk.records import MigrationState
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
        from agent_sdk.store import store_from_settings

        self.settings = settings
        self.store = store or store_from_settings(settings)
        if migrate:
            self.store.migrate()
        if settings.encryption.enabled:
            self._encrypt_at_rest(owns_store=store is None, check=migrate)
        if registry is not None:
            self.registry = registry
        self.orgs = OrgService(self.store, audit=lambda: self.audit)
        self.runs = RunService(
            settings,
            self.store,
            audit=lambda: self.audit,
            retention=lambda: self.retention,
            erasure=lambda: self.erasure,
            bus=lambda: self.bus,
            registry=lambda: self.registry,
            executor=lambda: self.executor,
            queue=lambda: self.queue,
        )
        self.sessions = SessionService(
            self.store,
            run_expiry=lambda org_id: self.retention.run_expiry(org_id),
            erasure=lambda: self.erasure,
        )

    def _encrypt_at_rest(self, *, owns_store: bool, check: bool) -> None:
        """Seal tenant columns from here on (ConfigError without a usable master key, or with
        another master key than the one that wrapped the keys already stored)."""
        from agent_sdk.governance.envelope import attach_codec

        try:
            attach_codec(self.settings, self.store, check=check)
        except BaseException:
            if owns_store:
                self.store.close()
            raise

    @cached_property
    def encryption(self) -> EncryptionService:
        from agent_sdk.core.encryption import EncryptionService

        return EncryptionService(
            self.settings, self.store, orgs=self.orgs, audit=lambda: self.audit
        )

    @cached_property
    def registry(self) -> AgentRegistry:
        from agent_sdk.engine.agent import AgentRegistry

        return AgentRegistry(self.settings.engine.agents, self.settings.engine.agents_file)

    @cached_property
    def audit(self) -> AuditService:
        from agent_sdk.core.audit import AuditService

        # Tail and export skip the records an org's retention policy has expired.
        return AuditService(
            self.settings, self.store, expired_before=lambda org: self.retention.audit_before(org)
        )

    @cached_property
    def retention(self) -> RetentionService:
        from agent_sdk.core.retention import RetentionService

        return RetentionService(
            self.store,
            orgs=self.orgs,
            audit=lambda: self.audit,
            residency=lambda: self.residency,
            batch_size=self.settings.retention.batch_size,
        )

    @cached_property
    def keys(self) -> KeyService:
        from agent_sdk.core.api_keys import KeyService

        return KeyService(self.settings, self.store, audit=self.audit)

    @cached_property
    def auth(self) -> AuthService:
        from agent_sdk.core.auth import AuthService

        return AuthService(self.settings, self.keys, self.orgs)

    @cached_property
    def redaction(self) -> RedactionService:
        from agent_sdk.core.redaction import RedactionService

        return RedactionService(self.settings, self.store, orgs=self.orgs, audit=lambda: self.audit)

    @cached_property
    def residency(self) -> ResidencyService:
        from agent_sdk.core.residency import ResidencyService

        return ResidencyService(
            self.store, here=self.settings.data_region, orgs=self.orgs, audit=lambda: self.audit
        )

    @cached_property
    def erasure(self) -> Erasure:
        from agent_sdk.core.deletion import Erasure

        # Only an executor already built has attempts of erased runs to stop.
        return Erasure(
            self.store, audit=lambda: self.audit, executor=lambda: self.__dict__.get("executor")
        )

    @cached_property
    def queue(self) -> Queue:
        """The queue of ``AGENT_SDK_EXECUTION_MODE=queue`` (opened on first use)."""
        from agent_sdk.queue import queue_from_settings

        return queue_from_settings(self.settings)

    @cached_property
    def bus(self) -> EventBus:
        from agent_sdk.core.events import EventBus

        # A store that can tell this process about events written by others (Postgres
        # LISTEN/NOTIFY) pushes them; the bus starts its listener on first use.
        listen = self.store.listen_events if self.store.pushes_events else None
        return EventBus(self.settings.stream.queue_size, listen=listen)

    @cached_property
    def executor(self) -> Executor:
        from agent_sdk.core.executor import Executor

        return Executor(self.settings, self.store, self.bus, self.registry)

    def load_agents(self) -> list[str]:
        """Import the configured agent modules and files now, so a bad one stops a server at
        start instead of failing its first run."""
        return self.registry.names()

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self.executor.attach(loop)

    def migrate(self) -> list[MigrationState]:
        return self.store.migrate()

    def migration_status(self) -> list[MigrationState]:
        return self.store.migration_status()

    def close(self, *, wait: bool = True, timeout: float | None = None) -> None:
        if "executor" in self.__dict__:
            if wait:
                self.executor.wait_idle(timeout)
            self.executor.close()
        if "queue" in self.__dict__:
            self.queue.close()
        if "bus" in self.__dict__:
            self.bus.close()
        self.store.close()
