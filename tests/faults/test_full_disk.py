"""Drill: the disk under the SQLite *store* fills up while runs execute.

The store's database file is on a small tmpfs; a real ``agent-sdk serve`` and a real ``agent-sdk
worker`` (queue mode; the SQLite queue on another disk) run runs of four logged tool calls. With
every run in flight the disk is filled to the last byte. Expected: the worker stays up and
``agent-sdk status`` shows it unhealthy; a new run is refused cleanly (HTTP 503, and the CLI's
clear error) with nothing half-written; no run is cancelled and none is left running forever;
once space is freed every run succeeds, and the invariants of every drill hold.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_process import ServeProcess, migrate

from agent_sdk.config import load_settings
from agent_sdk.core.runtime import Runtime
from agent_sdk.records import RunStatus
from faults._broker import ORG, cli, start, wait_until
from faults._disk import fill, small_disk
from faults._drill import logging_agent, submit_runs, wait_in_flight, written_line
from faults._invariants import check_invariants, tool_log

pytestmark = pytest.mark.slow

RUNS = 6


def _agent(log: Path) -> dict[str, Any]:
    return logging_agent("disk-drill", log, 1.0)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with small_disk(tmp_path / "small", "8m") as where:
        yield where


def _status(env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(cli("status", "-o", "json"), env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def test_a_full_disk_under_the_sqlite_store_loses_nothing_and_every_run_finishes(
    isolated_env: dict[str, str], disk: Path, tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    calls = tools / "calls.log"
    env = {
        **isolated_env,
        "AGENT_SDK_DATABASE_URL": f"sqlite:///{disk / 'store.db'}",
        "AGENT_SDK_EXECUTION_MODE": "queue",
        "AGENT_SDK_QUEUE_DB_PATH": str(tmp_path / "queue.db"),  # not on the small disk
        "AGENT_SDK_WORKER_LEASE": "3",
        "AGENT_SDK_FS_ALLOWLIST": str(tools),
        "AGENT_SDK_RETRY_BASE_DELAY": "0.2",
    }
    migrate(env)
    api = Runtime(load_settings(env=env, cwd=Path.cwd()))
    log = tmp_path / "worker.log"
    spec = tmp_path / "agent.json"
    spec.write_text(json.dumps(_agent(calls)))
    try:
        with ServeProcess(env, tmp_path / "serve.log") as server:
            auth = {"Authorization": f"Bearer {server.token}"}
            with httpx.Client(base_url=server.url, headers=auth, timeout=60) as client:
                run_ids = submit_runs(client, _agent(calls), RUNS)
                worker = start(env, log, "worker", "--count", "1")
                procs.append(worker)
                wait_in_flight(api, run_ids, log)
                filler = fill(disk)

                # Writes are refused cleanly: a 503 over HTTP, a clear error from the CLI.
                body = {"agent": _agent(calls), "input": "on a full disk"}
                answer = client.post("/v1/runs", json=body)
                assert answer.status_code == 503, answer.text
                assert answer.json()["code"] == "backend_unavailable", answer.text
                assert "disk is full" in answer.text, answer.text
                done = subprocess.run(
                    cli(
                        "runs",
                        "create",
                        "--local",
                        "--agent-file",
                        str(spec),
                        "--input",
                        "x",
                        "-o",
                        "json",
                    ),  # fmt: skip
                    env=env,
                    capture_output=True,
                    timeout=60,
                )
                assert done.returncode != 0, done.stdout
                said = done.stdout.decode() + done.stderr.decode()
                assert "disk" in said and "Traceback" not in said, said

                wait_until(
                    "the worker to notice", lambda: "store of worker" in log.read_text(), 60, log
                )
                wait_until(
                    "agent-sdk status to show the worker unhealthy",
                    lambda: (
                        [w["health"] for w in _status(env)["workers"]["alive"]]
                        == ["heartbeat late"]
                    ),
                    60,
                    log,
                )
                assert worker.poll() is None, log.read_text()
                assert not all(api.store.get_run(ORG, r).status.terminal for r in run_ids)
                filler.unlink()  # space again

                wait_until(
                    "every run to end",
                    lambda: all(api.store.get_run(ORG, r).status.terminal for r in run_ids),
                    120,
                    log,
                )
                wait_until(
                    "agent-sdk status to show it healthy",
                    lambda: [w["health"] for w in _status(env)["workers"]["alive"]] == ["ok"],
                    60,
                    log,
                )
                wait_until("the queue to empty", lambda: api.queue.depth().total == 0, 60, log)
                # Nothing half-written by the refused creations, and new ones are taken again.
                listed = client.get("/v1/runs", params={"limit": 100})
                assert listed.status_code == 200, listed.text
                assert sorted(r["id"] for r in listed.json()["data"]) == sorted(run_ids)
                again = client.post("/v1/runs", json={**body, "input": "after"})
                assert again.status_code == 201, again.text
        checked = check_invariants(
            api.store, ORG, run_ids, executions=tool_log(calls), line_of=written_line
        )
        for run_id, got in checked.items():
            assert "run.cancelled" not in got.types, f"{run_id} was cancelled: {got.types}"
            assert got.run.status is RunStatus.SUCCEEDED, (got.run.error, got.types)
            assert got.types.count("tool.result") == 4, got.types
        text = log.read_text()
        # One line per state change of the store; per run, at most the one that says it could
        # not be queued again, never one per retry.
        assert text.count("unreachable: ") == 1 and text.count("reachable again") == 1, text
        assert "could not start" not in text, text
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0, log.read_text()
    finally:
        api.close(wait=False)
