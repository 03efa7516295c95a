"""The Backend contract on the in-process backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from contracts.backend_contract import BackendContract

from agent_sdk.backend.local import LocalBackend
from agent_sdk.config import Settings


class TestLocalBackend(BackendContract):
    @pytest.fixture
    def backend(self, settings: Settings) -> Iterator[LocalBackend]:
        backend = LocalBackend(settings)
        try:
            yield backend
        finally:
            backend.close()

    @pytest.fixture
    def backend_in_org(self, settings: Settings) -> Iterator[Callable[[str], LocalBackend]]:
        made: list[LocalBackend] = []

        def make(org_id: str) -> LocalBackend:
            made.append(LocalBackend(settings.replace(org_id=org_id)))
            return made[-1]

        yield make
        for backend in made:
            backend.close()


def test_db_commands_act_on_the_local_database(settings: Settings) -> None:
    backend = LocalBackend(settings)
    try:
        backend.migrate()
        states = backend.migration_status()
        assert states and all(s.applied_at for s in states)
    finally:
        backend.close()
