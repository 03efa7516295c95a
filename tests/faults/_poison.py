"""Helpers of the poison-output drills (test_poison_output.py): an agents module whose model
and tool produce text no store can hold, faults injected into recording a run's end (database
triggers: the store itself refuses, nothing in the product is patched), and what these drills
check beyond the invariants of every drill."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import waiting
from waiting import log_tails

from agent_sdk.config import Settings
from agent_sdk.records import Event, EventType, Run

ORG = "default"
NUL_AND_SURROGATE = "a\x00b\udfffc"
# Inputs that make the triggers below refuse to record a successful end.
REFUSE_PREFIX = "refuse-finish"
OUTAGE_PREFIX = "outage-at-finish"

# The user's agents module, written to a directory on the workers' PYTHONPATH. Its tool
# appends one line per execution to POISON_TOOL_LOG, so a drill can tell how often it ran.
AGENTS_MODULE = '''
import os
import signal

from agent_sdk import Agent, tool
from agent_sdk.engine.models.base import ModelRequest, ModelResponse
from agent_sdk.records import Usage

BAD = "a\\x00b\\udfffc"


@tool
def poison(label: str = "") -> dict:
    """Return text no store can hold.

    Args:
        label: Echoed back.
    """
    with open(os.environ["POISON_TOOL_LOG"], "a", encoding="utf-8") as log:
        log.write(label + "\\n")
    return {"text": BAD, BAD: [BAD, label], "label": label}


@tool
def poison_text(label: str = "") -> str:
    """Return a plain string no store can hold."""
    with open(os.environ["POISON_TOOL_LOG"], "a", encoding="utf-8") as log:
        log.write(label + "\\n")
    return "tool " + BAD


class PoisonModel:
    """A model provider (not the scripted one) whose answers hold the text."""

    name = "poison-model"

    async def complete(self, request: ModelRequest) -> ModelResponse:
        user = next(m.content for m in request.messages if m.role == "user")
        return ModelResponse(text=f"model {BAD} {user}", usage=Usage(1, 1))

    async def stream(self, request: ModelRequest):
        yield await self.complete(request)


text_agent = Agent("poison-text", script=[{"text": "model " + BAD + " {input}"}])
model_agent = Agent("poison-model", model=PoisonModel())
tool_agent = Agent(
    "poison-tool",
    tools=[poison, poison_text],
    script=[
        {"tool_calls": [
            {"name": "poison", "arguments": {"label": "{input}/1"}},
            {"name": "poison_text", "arguments": {"label": "{input}/2"}},
        ]},
        # NUL only: a lone surrogate in the script would be echoed in the run's agent spec.
        {"tool": "poison", "arguments": {"label": "{input}/3\\x00"}},
        {"text": "done {tool_result}"},
    ],
)
plain_agent = Agent("plain", script=[{"text": "fine {input}"}])


@tool
def die(label: str = "") -> str:
    """Kill the process that runs this tool, as a native crash or the OOM killer would."""
    with open(os.environ["POISON_TOOL_LOG"], "a", encoding="utf-8") as log:
        log.write(label + "\\n")
    os.kill(os.getpid(), signal.SIGKILL)
    return "unreachable"


crash_agent = Agent("poison-crash", tools=[die], script=[
    {"tool": "die", "arguments": {"label": "{input}"}}, {"text": "survived"},
])
'''


def write_agents_module(root: Path) -> Path:
    """The agents module in ``root/agents_dir``; returns that directory."""
    where = root / "agents_dir"
    where.mkdir(parents=True, exist_ok=True)
    (where / "poison_agents.py").write_text(AGENTS_MODULE, encoding="utf-8")
    return where


def process_env(
    base: dict[str, str], agents_dir: Path, tool_log: Path, **extra: str
) -> dict[str, str]:
    """The environment of a worker or server process that knows the poison agents."""
    path = [str(agents_dir), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {
        **base,
        "PYTHONPATH": os.pathsep.join(path),
        "AGENT_SDK_AGENTS": "poison_agents",
        "POISON_TOOL_LOG": str(tool_log),
        **{f"AGENT_SDK_{k.upper()}": v for k, v in extra.items()},
    }


def cli(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "agent-sdk"), *args]


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(cli(*args), env=env, stdout=out, stderr=out)


def wait_until(
    what: str, check: Callable[[], bool], timeout: float, logs: Iterable[Path] = ()
) -> None:
    """:func:`waiting.wait_until`, showing the tails of the processes' logs on a timeout."""
    waiting.wait_until(what, check, timeout, log_tails(logs))


# -- faults in recording a run's end -------------------------------------------------------------
SQLITE_REFUSE = f"""
CREATE TRIGGER refuse_finish BEFORE UPDATE OF status ON runs
WHEN NEW.status = 'succeeded' AND NEW.input LIKE '{REFUSE_PREFIX}%'
BEGIN SELECT RAISE(ABORT, 'this end is refused by the drill'); END;
"""

# 57P01 (admin_shutdown) is what PostgreSQL answers when it is being stopped: an outage.
PG_FAULTS = f"""
CREATE FUNCTION refuse_finish() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.status = 'succeeded' AND NEW.input LIKE '{REFUSE_PREFIX}%' THEN
    RAISE EXCEPTION 'this end is refused by the drill';
  END IF;
  IF NEW.status = 'succeeded' AND NEW.input LIKE '{OUTAGE_PREFIX}%' THEN
    RAISE EXCEPTION 'the drill stops the database' USING ERRCODE = '57P01';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER refuse_finish BEFORE UPDATE OF status ON runs
FOR EACH ROW EXECUTE FUNCTION refuse_finish();
"""


def install_finish_faults(settings: Settings) -> None:
    if settings.store.backend == "sqlite":
        import sqlite3

        db = sqlite3.connect(settings.store.sqlite_path)
        try:
            db.executescript(SQLITE_REFUSE)
        finally:
            db.close()
        return
    import psycopg

    with psycopg.connect(settings.store.database_url, autocommit=True) as db:
        db.execute(PG_FAULTS)


# -- what these drills check beyond the invariants of every drill (_invariants.py) ----------
def label_of(call: Event) -> str | None:
    """The line the poison tools append per execution: the call's label (None: no label)."""
    return str(call.data["arguments"].get("label", "")) or None


def check_poisoned(run: Run, events: list[Event], *, max_starts: int) -> None:
    """No more starts than the retry cap allows, and nothing unstorable kept: no NUL, no lone
    surrogate in any event or the output."""
    starts = sum(e.type == EventType.RUN_STARTED for e in events)
    assert 1 <= starts <= max_starts, f"run {run.id}: {starts} run.started, cap {max_starts}"
    for event in events:
        assert not _unstorable(event.data), f"run {run.id}: {event.type} holds unstorable text"
    assert run.output is None or not _unstorable(run.output)


def _unstorable(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value or any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, dict):
        return any(_unstorable(k) or _unstorable(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_unstorable(v) for v in value)
    return False
