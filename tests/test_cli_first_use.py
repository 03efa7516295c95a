"""What a new user trips on (issue 10, item 9), through the CLI as they would meet it: agent
modules in the current directory, the bootstrap key, a server that is down, ``--version`` and a
worker with nothing to do. (The retention verbs' confirmation is in test_retention.py, on both
engines; ``db copy`` of a live source in test_db_copy.py; ``up`` and ``worker`` as real
processes in test_cli_up.py.)"""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from agent_sdk.cli.main import app

runner = CliRunner()


def cli(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(app, list(args), input=input, env=env)


def assert_one_error(result: Result, *needles: str) -> str:
    """One `error:` line (and maybe one `hint:` line) ends stderr; never a traceback."""
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    tail = lines[lines.index(errors[0]) + 1 :]
    assert tail == [] or (len(tail) == 1 and tail[0].startswith("hint: ")), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for needle in needles:
        assert needle in errors[0], result.stderr
    return errors[0]


# -- agent modules from the current directory ---------------------------------------------------

GOOD_AGENTS = '''
from agent_sdk import Agent, tool


@tool
def shout(text: str) -> str:
    """Say it louder.

    Args:
        text: what to say
    """
    return text.upper()


mine = Agent(
    name="mine",
    model="scripted",
    tools=[shout],
    script=[{"tool": "shout", "arguments": {"text": "from cwd"}}, {"text": "{tool_result}"}],
)
'''


def make_package(root: Path, agents_source: str) -> str:
    """``<pkg>/__init__.py`` and ``<pkg>/agents.py`` under ``root``; returns ``<pkg>.agents``.
    A fresh name each time, so no module cached by an earlier test answers for it."""
    name = f"myapp_{uuid.uuid4().hex[:8]}"
    (root / name).mkdir()
    (root / name / "__init__.py").write_text("")
    (root / name / "agents.py").write_text(textwrap.dedent(agents_source))
    return f"{name}.agents"


@pytest.fixture
def console_script_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """sys.path as the ``agent-sdk`` console script has it: without the current directory
    (pytest started with ``python -m`` has it, which would hide the bug)."""
    cwd = os.getcwd()
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", cwd)])


BAD_MODULES = [
    # (what the user has in the current directory, --agents value, exit code, words of the error)
    (None, "nosuchpkg_{u}.agents", 2, "not found: no module named 'nosuchpkg_{u}'"),
    (GOOD_AGENTS, "{pkg}z", 2, "not found: no module named '{pkg}z'"),
    (None, "myapp/agents.py", 2, "is not a module path"),
    (None, "myapp.agents:mine", 2, "is not a module path"),
    (None, "../../etc/passwd", 2, "is not a module path"),
    ("x = 1\n", "{pkg}", 2, "defines no Agent"),
    ("raise RuntimeError('boom\\nsecond line')\n", "{pkg}", 1, "RuntimeError: boom second line"),
    ("import no_such_dependency_h6\n", "{pkg}", 1, "No module named 'no_such_dependency_h6'"),
    ("def broken(:\n", "{pkg}", 1, "SyntaxError"),
    ("import sys\nsys.exit(0)\n", "{pkg}", 1, "SystemExit: 0"),
]


@pytest.mark.parametrize("command", ["up", "serve", "worker"])
@pytest.mark.parametrize(("source", "spec", "code", "words"), BAD_MODULES)
def test_a_bad_agents_module_is_one_line_before_anything_starts(
    console_script_path: None,
    command: str,
    source: str | None,
    spec: str,
    code: int,
    words: str,
) -> None:
    u = uuid.uuid4().hex[:8]
    pkg = make_package(Path.cwd(), source) if source is not None else ""
    spec = spec.format(pkg=pkg, u=u)
    env = {"AGENT_SDK_EXECUTION_MODE": "queue"} if command == "worker" else None
    result = (
        cli(command, "--agents", spec, "--port", "0", env=env)
        if command != "worker"
        else (cli(command, "--agents", spec, env=env))
    )
    assert result.exit_code == code, (result.stdout, result.stderr)
    line = assert_one_error(result, f"agents module {spec!r}", words.format(pkg=pkg, u=u))
    assert "\n" not in line
    assert "running" not in result.stderr and "serving" not in result.stderr
    data_dir = Path(os.environ["XDG_DATA_HOME"]) / "agent-sdk"
    assert not (data_dir / "server.json").exists()
    assert not (data_dir / "agent-sdk.db").exists()  # nothing was touched


@pytest.mark.parametrize(
    ("content", "words"),
    [(None, "cannot read agents file"), ("[agents.x\n", "is not valid TOML")],
)
def test_a_bad_agents_file_is_one_line_before_up_starts(content: str | None, words: str) -> None:
    if content is not None:
        Path("agents.toml").write_text(content)
    result = cli("up", "--port", "0", env={"AGENT_SDK_AGENTS_PATH": "agents.toml"})
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert_one_error(result, words)
    assert "running" not in result.stderr


def test_a_module_in_the_current_directory_is_found_as_python_m_would(
    console_script_path: None,
) -> None:
    spec = make_package(Path.cwd(), GOOD_AGENTS)
    result = cli(
        "--local", "runs", "create", "--agent", "mine", "--input", "x", "-o", "json",
        env={"AGENT_SDK_AGENTS": spec},
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    run = json.loads(result.stdout)
    assert run["status"] == "succeeded" and run["output"] == "FROM CWD"


def test_a_directory_of_the_same_name_elsewhere_is_not_used(
    console_script_path: None, tmp_path: Path
) -> None:
    # The package lives beside the current directory, not in it: not found, exit 2.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    spec = make_package(elsewhere, GOOD_AGENTS)
    result = cli("--local", "runs", "list", env={"AGENT_SDK_AGENTS": spec})
    assert result.exit_code == 0  # listing runs imports no agent
    result = cli(
        "--local", "runs", "create", "--agent", "mine", "--input", "x",
        env={"AGENT_SDK_AGENTS": spec},
    )  # fmt: skip
    assert result.exit_code == 2
    assert_one_error(result, "not found")


# -- a worker with nothing to do ------------------------------------------------------------------


@pytest.mark.parametrize("mode", [None, "inline", "INLINE", " inline "])
def test_a_worker_in_inline_mode_says_it_has_nothing_to_do(mode: str | None) -> None:
    # A real process with a deadline: before the fix the worker waited forever, in silence.
    env = {k: v for k, v in os.environ.items() if k != "AGENT_SDK_EXECUTION_MODE"}
    if mode is not None:
        env["AGENT_SDK_EXECUTION_MODE"] = mode
    code = "from agent_sdk.cli.main import main; main()"
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, "worker", "--count", "2"],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("agent-sdk worker in inline mode neither said nor did anything for 60 s")
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("error: nothing to do") and "inline in the server" in lines[0]
    assert lines[1:] == ["hint: set AGENT_SDK_EXECUTION_MODE=queue for the server and the workers"]
    assert done.stdout == ""


def test_a_worker_in_an_unknown_mode_is_a_config_error() -> None:
    result = cli("worker", env={"AGENT_SDK_EXECUTION_MODE": "queue; rm -rf /"})
    assert result.exit_code == 2
    assert_one_error(result, "AGENT_SDK_EXECUTION_MODE")


# -- --version ------------------------------------------------------------------------------------


def test_version_option_prints_what_the_version_command_prints() -> None:
    from agent_sdk import __version__

    for args in (["--version"], ["--version", "runs", "list"], ["--debug", "--version"]):
        result = cli(*args)
        assert result.exit_code == 0, (args, result.stderr)
        assert result.stdout == f"agent-sdk {__version__}\n"
    assert cli("version", "-o", "table").stdout == f"agent-sdk {__version__}\n"


def test_version_option_reads_no_configuration() -> None:
    # Eager: a broken setting or config file does not stand between a user and the version.
    Path("agent-sdk.toml").write_text("backend = [unclosed\n")
    result = cli("--version", env={"AGENT_SDK_BACKEND": "nonsense", "AGENT_SDK_PORT": "-1"})
    assert result.exit_code == 0 and result.stdout.startswith("agent-sdk ")
    assert cli("--version=yes").exit_code == 2  # a flag, not an option with a value


def test_version_option_imports_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "sys.argv = ['agent-sdk', '--version']\n"
        "from agent_sdk.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
        "heavy = ['fastapi', 'uvicorn', 'httpx', 'keyring', 'cryptography', 'pydantic', 'yaml',\n"
        "         'sqlite3', 'rich', 'agent_sdk.engine', 'agent_sdk.store', 'agent_sdk.config']\n"
        "print('LOADED=' + ','.join(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.splitlines()[0].startswith("agent-sdk ")
    assert done.stdout.strip().splitlines()[-1] == "LOADED="


# -- a server that is down is reported before a missing credential ---------------------------------


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def answering_port() -> Iterator[int]:
    """A loopback port where something answers HTTP (404 to everything), as a server would."""

    class Quiet(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(httpd.server_address[1])
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


@pytest.mark.parametrize(
    "how",
    ["flag", "env", "flag-with-password", "env-with-password", "trailing-path"],
)
def test_an_unreachable_server_without_a_credential_is_exit_1_not_4(how: str) -> None:
    port = closed_port()
    userinfo = "admin:s3cr3t-pw@" if "password" in how else ""
    url = f"http://{userinfo}127.0.0.1:{port}" + ("/some/path/" if how == "trailing-path" else "")
    if how.startswith("env"):
        result = cli("runs", "list", "-o", "json",
                     env={"AGENT_SDK_BACKEND": "http", "AGENT_SDK_SERVER_URL": url})  # fmt: skip
    else:
        result = cli("--server", url, "runs", "list", "-o", "json")
    assert result.exit_code == 1, (result.stdout, result.stderr)
    error = json.loads(result.stderr)["error"]
    assert error["code"] == "backend_unavailable"
    assert error["message"].startswith("cannot reach the agent-sdk server at http://")
    assert f"127.0.0.1:{port}" in error["message"]
    assert "s3cr3t-pw" not in result.stderr + result.stdout
    assert result.stdout == ""
    # The same as a table: one line and a hint, nothing about credentials.
    table = cli("--server", url, "runs", "list", "-o", "table")
    assert table.exit_code == 1
    assert_one_error(table, "cannot reach the agent-sdk server")
    assert "credential" not in table.stderr and "s3cr3t-pw" not in table.stderr


def test_auth_status_also_says_the_server_is_down() -> None:
    url = f"http://admin:s3cr3t-pw@127.0.0.1:{closed_port()}"
    result = cli("auth", "status", "--server", url, "-o", "json")
    assert result.exit_code == 1, (result.stdout, result.stderr)
    shown = json.loads(result.stdout)
    assert shown["source"] is None and shown["error"].startswith("cannot reach")
    assert "s3cr3t-pw" not in result.stdout + result.stderr


def test_a_reachable_server_without_a_credential_is_still_exit_4(answering_port: int) -> None:
    url = f"http://admin:s3cr3t-pw@127.0.0.1:{answering_port}"
    result = cli("--server", url, "runs", "list", "-o", "json")
    assert result.exit_code == 4, (result.stdout, result.stderr)
    error = json.loads(result.stderr)["error"]
    assert error["code"] == "unauthenticated"
    assert (
        error["message"]
        == f"no credential for the server at http://admin:***@127.0.0.1:{answering_port}"
    )
    assert "s3cr3t-pw" not in result.stderr


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1:1", "http://[::1", "not a url", "http://127.0.0.1:99999x"]
)
def test_an_unusable_server_url_is_a_usage_error(url: str) -> None:
    result = cli("--server", url, "runs", "list")
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert_one_error(result, "is not a usable URL")


# -- the bootstrap key, wherever the data directory is ---------------------------------------------

TOKEN = "asdk_0Vd8VXEVWaN5e1Ty_ooEWfc8DWE5gC16DoRHn9mlwmumCZsFg1luQ47"


def fake_up(data_dir: Path, token: str = TOKEN) -> str:
    """What `agent-sdk up` leaves in its data directory while it runs: server.json naming a live
    process (this one) and the 0600 admin-token file, in a 0700 directory as `up` makes it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    url = f"http://127.0.0.1:{closed_port()}"
    (data_dir / "server.json").write_text(json.dumps({"url": url, "pid": os.getpid()}))
    (data_dir / "admin-token").write_text(token + "\n")
    (data_dir / "admin-token").chmod(0o600)
    return url


@pytest.mark.parametrize("where", ["AGENT_SDK_DATA_DIR", "XDG_DATA_HOME", "default"])
def test_auth_token_prints_only_the_bootstrap_key_of_the_data_directory(
    where: str, tmp_path: Path
) -> None:
    env: dict[str, str] = {}
    if where == "AGENT_SDK_DATA_DIR":
        data_dir = tmp_path / "custom data"  # a space, as on many laptops
        env["AGENT_SDK_DATA_DIR"] = str(data_dir)
    elif where == "XDG_DATA_HOME":
        env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
        data_dir = tmp_path / "xdg" / "agent-sdk"
    else:
        data_dir = Path(os.environ["XDG_DATA_HOME"]) / "agent-sdk"
    # A decoy where the README's `cat ~/.local/share/agent-sdk/admin-token` would look.
    decoy = Path(os.environ["HOME"]) / ".local" / "share" / "agent-sdk"
    if decoy != data_dir:
        decoy.mkdir(parents=True)
        (decoy / "admin-token").write_text("asdk_decoy_decoy\n")
    fake_up(data_dir)
    for args in (["auth", "token"], ["auth", "token", "--bootstrap"]):
        result = cli(*args, env=env)
        assert result.exit_code == 0, (args, result.stderr)
        assert result.stdout == TOKEN + "\n"  # exactly what $(...) needs
        assert result.stderr == ""


def test_auth_token_bootstrap_needs_no_running_server(tmp_path: Path) -> None:
    data_dir = tmp_path / "d"
    fake_up(data_dir)
    (data_dir / "server.json").unlink()  # the server (say `serve` on host A) left no state
    env = {"AGENT_SDK_DATA_DIR": str(data_dir), "AGENT_SDK_API_KEY": "asdk_other_key"}
    result = cli("auth", "token", "--bootstrap", env=env)
    assert result.exit_code == 0 and result.stdout == TOKEN + "\n"
    without = cli("auth", "token", env={"AGENT_SDK_DATA_DIR": str(data_dir)})
    assert without.exit_code == 4  # commands go to the local database: there is nothing to print
    assert_one_error(without, "local database")
    assert without.stdout == ""


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "no bootstrap key in"),
        ("", "does not hold one API key"),
        ("asdk_a b\n", "does not hold one API key"),
        ("asdk_a\nrm -rf ~\n", "does not hold one API key"),
        ("asdk_\x1b[2Jx", "does not hold one API key"),
        (b"\xff\xfe", "cannot read the bootstrap key"),
    ],
)
def test_a_missing_or_damaged_bootstrap_key_is_exit_4_and_prints_nothing(
    content: str | bytes | None, words: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "d"
    data_dir.mkdir()
    if isinstance(content, bytes):
        (data_dir / "admin-token").write_bytes(content)
    elif content is not None:
        (data_dir / "admin-token").write_text(content)
    result = cli("auth", "token", "--bootstrap", env={"AGENT_SDK_DATA_DIR": str(data_dir)})
    assert result.exit_code == 4, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert_one_error(result, words)
