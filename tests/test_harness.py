"""The test suite's own rules: a missing driver fails CI instead of skipping, xdist workers
never share a Redis database, and a hung test is stopped by the global timeout."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import _worker_redis_url

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def run_pytest(tmp_path: Path, body: str, *args: str, require: bool) -> tuple[int, str]:
    """Run pytest in a child on one test file, with the repository's conftest importable and
    its pyproject as the configuration."""
    (tmp_path / "test_child.py").write_text(body)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENT_SDK_", "PYTEST_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(ROOT), env.get("PYTHONPATH", "")])
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # seconds faster; the one plugin needed is named
    if require:
        env["AGENT_SDK_TEST_REQUIRE_SERVICES"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "pytest_timeout",
         "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(tmp_path), *args, "test_child.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return proc.returncode, proc.stdout + proc.stderr


DRIVERS = [
    # absent altogether
    "agent_sdk_no_such_driver",
    # present but broken: its import raises, as a half-installed wheel's does
    "broken_driver",
]


@pytest.mark.slow
@pytest.mark.parametrize("name", DRIVERS)
def test_a_missing_driver_fails_when_services_are_required(tmp_path: Path, name: str) -> None:
    (tmp_path / "broken_driver.py").write_text("raise ImportError('libfoo.so: no such file')\n")
    body = (
        "from conftest import require_module\n"
        f"driver = require_module({name!r}, 'Frobnitz')\n"
        "def test_uses_it():\n"
        "    assert driver\n"
    )
    rc, out = run_pytest(tmp_path, body, require=True)
    assert rc != 0, out
    assert "Frobnitz is not reachable" in out and name in out, out
    assert "AGENT_SDK_TEST_REQUIRE_SERVICES=1" in out and "pip install -e '.[test]'" in out, out
    # Without the variable (a laptop), the same file skips with the reason.
    rc, out = run_pytest(tmp_path, body, "-rs", require=False)
    assert rc == pytest.ExitCode.NO_TESTS_COLLECTED, out  # the whole file skipped
    assert "1 skipped" in out and "Frobnitz is not reachable" in out, out


@pytest.mark.slow
def test_a_hung_test_is_stopped_by_the_configured_timeout(tmp_path: Path) -> None:
    body = "import threading\ndef test_hangs():\n    threading.Event().wait()\n"
    rc, out = run_pytest(tmp_path, body, "-o", "timeout=2", require=False)
    assert rc == 1, out
    assert "Timeout" in out and "1 failed" in out, out
    configured = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]
    limit = configured["ini_options"]["timeout"]
    # Above the longest fault drill on a busy machine, below CI's own limit by far.
    assert isinstance(limit, int) and 120 <= limit <= 600


def test_each_xdist_worker_gets_its_own_redis_database() -> None:
    url = "redis://127.0.0.1:6379/15"
    got = [_worker_redis_url(url, w) for w in (None, "master", "gw0", "gw1", "gw2", "gw14")]
    assert got == [url, url, url, url[:-2] + "14", url[:-2] + "13", url[:-2] + "1"]
    assert len(set(got[2:])) == 4  # four workers, four databases
    # The rest of the URL is kept; a URL without a database counts as 0.
    assert _worker_redis_url("rediss://:p%40ss@h:1/9?ssl_cert_reqs=none", "gw2") == (
        "rediss://:p%40ss@h:1/7?ssl_cert_reqs=none"
    )
    assert _worker_redis_url("redis://h:1", "gw0") == "redis://h:1"
    for bad, worker in [
        ("redis://127.0.0.1:6379/15", "gw15"),  # would flush database 0, a developer's own
        ("redis://h:1", "gw1"),  # database 0 has no room below it
        ("redis://h:1/1", "gw2"),
        ("http://h:1/15", "gw1"),  # not Redis at all
        ("redis://h:1/x", "gw1"),
        ("redis://h:1/15/../3", "gw1"),
    ]:
        with pytest.raises(pytest.UsageError) as info:
            _worker_redis_url(bad, worker)
        assert "AGENT_SDK_TEST_REDIS_URL" in str(info.value)
    # Names that are not xdist's are not worker indices.
    for odd in ("gw", "gwx", "gw-1", "gw\u0661", ""):
        assert _worker_redis_url(url, odd) == url


def test_ci_runs_the_readmes_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("**Test it**", 1)[1].split("```sh\n", 1)[1].split("\n```", 1)[0]
    command = block.rsplit(" && ", 1)[1]
    assert command.startswith("python -m pytest ")
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if "pytest" in line]
    assert ci[-1] == command, (ci, command)
    # And the README says where the tests' data goes, and how to move it.
    for needed in (
        "database 15",
        "AGENT_SDK_TEST_REDIS_URL",
        "`test`",
        "AGENT_SDK_TEST_POSTGRES_URL",
    ):
        assert needed in readme, needed
