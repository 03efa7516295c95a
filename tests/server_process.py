"""`agent-sdk serve` as a real process on a free loopback port, for the tests of what only the
real HTTP stack shows (the protocol layer, uvicorn's configuration)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from agent_sdk.config import Settings, load_settings
from agent_sdk.store import open_store


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def agent_sdk() -> list[str]:
    exe = shutil.which("agent-sdk", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-c", "from agent_sdk.cli.main import main; main()"]


def migrate(env: dict[str, str]) -> Settings:
    """Migrate the database of ``env`` (``serve`` refuses an unmigrated one)."""
    settings = load_settings(env=env, cwd=Path.cwd())
    store = open_store(settings.store.database_url)
    try:
        store.migrate()
    finally:
        store.close()
    return settings


class ServeProcess:
    """``agent-sdk <command> --port <free port>`` with ``env``; its output goes to ``log``."""

    def __init__(self, env: dict[str, str], log: Path, command: str = "serve") -> None:
        self.env = dict(env)
        self.settings = load_settings(env=self.env, cwd=Path.cwd())
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.command = command
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServeProcess:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*agent_sdk(), self.command, "--port", str(self.port)],
                env=self.env,
                stdout=out,
                stderr=out,
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"agent-sdk {self.command} did not start:\n{self.output}")
            time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    @property
    def token(self) -> str:
        return self.settings.admin_token_path.read_text().strip()

    def rss_kib(self) -> int:
        """The resident memory of the server process (Linux)."""
        assert self.proc is not None
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        line = next(x for x in status.splitlines() if x.startswith("VmRSS:"))
        return int(line.split()[1])


def child_env(**extra: str) -> dict[str, str]:
    """The test's environment (isolated by conftest), plus ``AGENT_SDK_*`` settings."""
    env = dict(os.environ)
    env.update({f"AGENT_SDK_{k.upper()}": v for k, v in extra.items()})
    return env
