"""Settings by group: every public (flat) setting name has one place in a group, load_settings
puts each value there, and replace() takes the flat names as well as the groups."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from agent_sdk.config import _PARSERS, env_name, load_settings
from agent_sdk.settings import FLAT, Settings, flat_value

DOCS = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
# Settings that are fields of Settings itself rather than of a group.
TOP_LEVEL = {"profile", "data_dir", "data_region", "redis_url", "pii_redaction_enabled", "debug"}


def test_every_public_name_has_one_place() -> None:
    own = {f.name for f in dataclasses.fields(Settings)}
    assert set(FLAT) | TOP_LEVEL == set(_PARSERS)
    assert TOP_LEVEL <= own and not set(FLAT) & own
    assert len(set(FLAT.values())) == len(FLAT), "two names share one place"
    defaults = Settings()
    for name in _PARSERS:
        flat_value(defaults, name)  # the path resolves


def test_values_land_in_their_group(tmp_path: Path) -> None:
    secret = tmp_path / "jwt"
    secret.write_text("s" * 40 + "\n")
    secret.chmod(0o600)
    env = {
        "HOME": str(tmp_path),
        "AGENT_SDK_KAFKA_TOPIC": "jobs-eu",
        "AGENT_SDK_WORKER_LEASE": "12.5",
        "AGENT_SDK_STORAGE_BACKEND": "sqlite",
        "AGENT_SDK_QUEUE_BACKEND": "memory",
        "AGENT_SDK_EVENT_RETENTION_MAX_EVENTS": "9",
        "AGENT_SDK_JWT_SECRET_FILE": str(secret),
        "API_KEY_ROLE": "viewer",
        "AGENT_SDK_ORG": "acme",
    }
    (tmp_path / "agent-sdk.toml").write_text("sqs_queue_url = 'http://127.0.0.1:9/q'\nport = 9\n")
    s = load_settings(flags={"max_steps": 3}, env=env, cwd=tmp_path)
    assert s.queue.kafka.topic == "jobs-eu" and s.queue.backend == "memory"
    assert s.queue.sqs.queue_url == "http://127.0.0.1:9/q" and s.server.port == 9
    assert s.worker.lease == 12.5 and s.engine.max_steps == 3
    assert s.retention.max_events_per_run == 9
    assert s.jwt.secret == "s" * 40 and s.auth.api_key_role == "viewer"
    assert s.client.org_id == "acme" and s.store.backend == "sqlite"
    assert s.warnings == ()


def test_replace_takes_flat_names_and_groups() -> None:
    base = Settings(data_dir="/d")
    changed = base.replace(worker_lease=5.0, kafka_topic="t", max_steps=3, data_dir="/e")
    assert (changed.worker.lease, changed.queue.kafka.topic) == (5.0, "t")
    assert (changed.engine.max_steps, changed.data_dir) == (3, "/e")
    # the rest of each touched group is kept, and the original is unchanged
    assert changed.worker.count == base.worker.count
    assert changed.queue.kafka.bootstrap_servers == base.queue.kafka.bootstrap_servers
    assert base.worker.lease == 30.0 and base.queue.kafka.topic == "agent-sdk-jobs"
    grouped = base.replace(worker=dataclasses.replace(base.worker, lease=5.0))
    assert grouped.worker == base.replace(worker_lease=5.0).worker
    with pytest.raises(TypeError, match="worker_leese"):
        base.replace(worker_leese=1.0)


def test_the_groups_are_documented() -> None:
    text = DOCS.read_text()
    missing = [
        f"settings.{'.'.join(path)}"
        for name, path in FLAT.items()
        if f"`{path[-1]}` (`{env_name(name)}`)" not in text
        or f"| `settings.{'.'.join(path[:-1])}` |" not in text
    ]
    assert not missing, f"document these in docs/configuration.md: {missing}"
