"""`agent-sdk up` as a real process: the CLI of the same machine finds it through the state file,
and the state file goes away when the server stops."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def agent_sdk() -> list[str]:
    exe = shutil.which("agent-sdk", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-c", "from agent_sdk.cli.main import main; main()"]


def wait_healthy(url: str, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"agent-sdk up exited early: {proc.communicate()[1]}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("agent-sdk up did not answer /health in time")


@pytest.fixture
def server(isolated_env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    port = free_port()
    env = dict(os.environ)
    proc = subprocess.Popen(
        [*agent_sdk(), "up", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    state = Path(env["XDG_DATA_HOME"]) / "agent-sdk" / "server.json"
    try:
        wait_healthy(url, proc)
        yield proc, url, state
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*agent_sdk(), *args], env=dict(os.environ), capture_output=True, text=True, timeout=60
    )


def test_the_cli_uses_the_up_server_and_the_state_file_goes_away(
    server: tuple[subprocess.Popen[str], str, Path],
) -> None:
    proc, url, state = server
    assert json.loads(state.read_text()) == {"url": url, "pid": proc.pid}

    result = run_cli("runs", "create", "--agent", "demo", "--input", "x", "--follow", "-o", "json")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "run.succeeded"
    run_id = events[0]["run_id"]

    # The run was made by the server: asking it over HTTP with the admin token finds it.
    token = (state.parent / "admin-token").read_text().strip()
    answer = httpx.get(
        f"{url}/v1/runs/{run_id}", headers={"Authorization": f"Bearer {token}"}, timeout=5
    )
    assert answer.status_code == 200 and answer.json()["status"] == "succeeded"
    # What the README tells other shells to export: exactly that key, nothing else on stdout.
    printed = run_cli("auth", "token")
    assert printed.returncode == 0 and printed.stdout == token + "\n", printed.stderr

    # A second `up` refuses to start while this one runs.
    second = run_cli("up", "--port", str(free_port()))
    assert second.returncode == 1 and "already runs" in second.stderr

    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "export AGENT_SDK_SERVER_URL=" + url in err
    assert token in err  # shown once, because this start created it
    assert not state.exists()
    assert "Traceback" not in err


def test_up_on_a_taken_port_is_one_clear_line(isolated_env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("up", "--port", str(port))
    assert result.returncode == 1
    assert (
        result.stderr.strip().splitlines()[0]
        == f"error: port {port} on 127.0.0.1 is already in use"
    )
    assert "Traceback" not in result.stderr
    assert not (Path(os.environ["XDG_DATA_HOME"]) / "agent-sdk" / "server.json").exists()


def test_serve_refuses_an_unmigrated_database(isolated_env: dict[str, str]) -> None:
    result = run_cli("serve", "--port", str(free_port()))
    assert result.returncode == 1
    assert "pending migration" in result.stderr
    assert "hint: agent-sdk db migrate" in result.stderr


# Slow enough (four turns of 3 s) that a loaded machine cannot finish the run before the test's
# Ctrl-C lands: at 0.3 s a turn it once did, and the run ended "succeeded".
SLOW_AGENT = """\
name = "slow"
model = "scripted"
latency = 3
tools = ["fs.list"]
script = [
  {tool = "fs.list", arguments = {path = "."}},
  {tool = "fs.list", arguments = {path = "."}},
  {tool = "fs.list", arguments = {path = "."}},
  {text = "done"},
]
"""


def test_ctrl_c_while_following_a_local_run_cancels_it(isolated_env: dict[str, str]) -> None:
    Path("slow.toml").write_text(SLOW_AGENT)
    proc = subprocess.Popen(
        [*agent_sdk(), "runs", "create", "--agent-file", "slow.toml", "--input", "x",
         "--follow", "-o", "jsonl", "--local"],
        env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    first = json.loads(proc.stdout.readline())  # the run exists and is being followed
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "cancelling run" in err and "Traceback" not in err
    shown = run_cli("runs", "show", first["run_id"], "-o", "json", "--local")
    assert json.loads(shown.stdout)["status"] == "cancelled"


def test_up_and_worker_import_agents_from_the_current_directory(
    isolated_env: dict[str, str],
) -> None:
    """From a project directory holding myapp/, without PYTHONPATH=.: `up` serves its agents,
    and `worker --count 2` processes (spawned children) execute them."""
    from test_cli_first_use import GOOD_AGENTS, make_package

    spec = make_package(Path.cwd(), GOOD_AGENTS)
    env = {**os.environ, "AGENT_SDK_EXECUTION_MODE": "queue"}
    assert "." not in env.get("PYTHONPATH", "").split(os.pathsep)
    assert os.getcwd() not in env.get("PYTHONPATH", "").split(os.pathsep)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [*agent_sdk(), "up", "--port", str(port), "--agents", spec],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    worker = subprocess.Popen(
        [*agent_sdk(), "worker", "--count", "2", "--agents", spec],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_healthy(url, server)
        token = (Path(env["XDG_DATA_HOME"]) / "agent-sdk" / "admin-token").read_text().strip()
        auth = {"Authorization": f"Bearer {token}"}
        made = httpx.post(f"{url}/v1/runs", json={"agent": "mine", "input": "x"}, headers=auth)
        assert made.status_code == 201, made.text
        deadline = time.monotonic() + 60
        run = made.json()
        while time.monotonic() < deadline and run["status"] not in ("succeeded", "failed"):
            assert worker.poll() is None, worker.communicate()[1]
            time.sleep(0.1)
            run = httpx.get(f"{url}/v1/runs/{run['id']}", headers=auth).json()
        assert run["status"] == "succeeded" and run["output"] == "FROM CWD", run
    finally:
        # SIGTERM is what a service manager sends; the worker parent forwards it to its children.
        for proc in (worker, server):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                _, err = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
            assert "Traceback" not in err, err
