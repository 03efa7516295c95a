"""``Agent``: a named model + instructions + tools, runnable from Python; and the registry of the
agents a deployment knows.

An agent becomes a JSON spec (:meth:`Agent.to_spec`) when a run is queued and is rebuilt from it
(:meth:`Agent.from_spec`) by whichever process executes the run. Specs that arrive over the API
are untrusted: the registry resolves them without importing anything (see
:meth:`AgentRegistry.resolve`), since an import path in a spec would let a client run any
installed function as a tool.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import difflib
import importlib
import math
import os
import re
import sys
import threading
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any, Unpack

from agent_sdk.engine.builtin_tools import BUILTIN_TOOLS
from agent_sdk.engine.models import get_provider, provider_name
from agent_sdk.engine.models.base import ModelProvider
from agent_sdk.engine.models.scripted import MAX_LATENCY, validate_script
from agent_sdk.engine.runner import (
    EventRecorder,
    RunOptions,
    RunResult,
    execute,
    local_env,
    new_run_id,
)
from agent_sdk.engine.tools import Tool, is_tool, tool
from agent_sdk.errors import AgentImportError, AgentSDKError, ConfigError, InvalidInput, NotFound
from agent_sdk.records import Event, EventType

ToolLike = Tool | Callable[..., Any] | str
SPEC_FIELDS = (
    "name",
    "model",
    "instructions",
    "tools",
    "script",
    "latency",
    "max_steps",
    "max_tokens",
    "output_type",
)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
_IMPORT_PATH = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")

# Agent name -> model, set by Agent.override(). A ContextVar, so an override in one test (or one
# asyncio task) never leaks into another running at the same time.
_OVERRIDES: ContextVar[Mapping[str, ModelProvider | str]] = ContextVar(
    "agent_sdk_model_overrides", default=MappingProxyType({})
)


def _bad(field: str, message: str, hint: str | None = None) -> InvalidInput:
    return InvalidInput(f"agent field {field!r} {message}", hint=hint, field=field)


def _positive(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _bad(field, "must be a positive integer or null")
    return value


def _import(path: str, what: str) -> Any:
    module, _, attr = path.partition(":")
    try:
        obj: Any = importlib.import_module(module)
    except Exception as exc:  # a broken module fails in many ways; all are a config problem
        raise ConfigError(f"cannot import module {module!r} for {what} {path!r}: {exc}") from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"module {module!r} has no attribute {attr!r} ({what} {path!r})")
        obj = getattr(obj, part)
    return obj


def object_path(obj: Any) -> str | None:
    """``"module:qualname"`` if importing that gives back ``obj`` itself, else None."""
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or "<" in qualname:
        return None
    found: Any = sys.modules.get(module)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return f"{module}:{qualname}" if found is obj else None


def _tool_entry(item: Any, where: str, *, trusted: bool) -> Tool | str:
    if isinstance(item, str):
        if item in BUILTIN_TOOLS or (trusted and _IMPORT_PATH.fullmatch(item)):
            return item
        close = difflib.get_close_matches(item, list(BUILTIN_TOOLS), n=1)
        raise _bad(
            where,
            f"names an unknown tool {item!r}",
            hint=(f"did you mean {close[0]!r}? " if close else "")
            + "use a built-in ("
            + ", ".join(BUILTIN_TOOLS)
            + ")"
            + (" or 'package.module:function'" if trusted else ""),
        )
    if is_tool(item):
        return item  # type: ignore[no-any-return]
    if callable(item):
        return tool(item)
    raise _bad(where, f"must be a tool, a function or a tool name, not {type(item).__name__}")


def _imported_tool(path: str) -> Tool:
    obj = _import(path, "tool")
    if is_tool(obj):
        return obj  # type: ignore[no-any-return]
    if callable(obj):
        return tool(obj)
    raise ConfigError(f"tool {path!r} is neither a tool nor a function")


class Agent:
    """An agent: ``Agent("support", model="scripted", instructions=..., tools=[...])``.

    ``tools`` holds Tool objects, ``@tool`` functions (plain functions are wrapped), built-in
    names (``"fs.read"``) or ``"package.module:function"`` paths, imported on first use.
    ``output_type`` (any type pydantic's TypeAdapter accepts) makes the final answer JSON,
    validated; a bad answer goes back to the model as one more step. ``script`` and ``latency``
    configure the ``scripted`` model.
    """

    def __init__(
        self,
        name: str,
        model: str | ModelProvider = "scripted",
        instructions: str = "",
        tools: Iterable[ToolLike] = (),
        output_type: Any = None,
        script: list[dict[str, Any]] | None = None,
        latency: float = 0.0,
        max_steps: int | None = None,
        max_tokens: int | None = None,
    ) -> None:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise _bad("name", "must be 1-64 letters, digits, '_', '-' or '.'")
        self.name = name
        if isinstance(model, str):
            try:
                provider_name(model)
            except ConfigError as exc:
                raise _bad("model", f"is invalid: {exc.message}", exc.hint) from None
        elif not (callable(getattr(model, "complete", None)) and hasattr(model, "stream")):
            raise _bad("model", "must be a model string or a ModelProvider")
        self.model = model
        if not isinstance(instructions, str):
            raise _bad("instructions", "must be a string")
        self.instructions = instructions
        try:
            self.script = None if script is None else validate_script(script)
        except InvalidInput as exc:
            raise _bad("script", f"is invalid: {exc.message}", exc.hint) from None
        if (
            isinstance(latency, bool)
            or not isinstance(latency, int | float)
            or not (math.isfinite(latency) and 0 <= latency <= MAX_LATENCY)
        ):
            raise _bad("latency", f"must be a number of seconds from 0 to {MAX_LATENCY:g}")
        self.latency = float(latency)
        self.max_steps = _positive(max_steps, "max_steps")
        self.max_tokens = _positive(max_tokens, "max_tokens")
        if isinstance(tools, str | bytes) or not isinstance(tools, Iterable):
            raise _bad("tools", "must be a list")
        self.tools: tuple[Tool | str, ...] = tuple(
            _tool_entry(t, f"tools[{i}]", trusted=True) for i, t in enumerate(tools)
        )
        if isinstance(output_type, str) and not _IMPORT_PATH.fullmatch(output_type):
            raise _bad("output_type", "must be a type or a 'package.module:Type' path")
        self.output_type = output_type
        self._tools_cache: dict[str, Tool] | None = None

    def __repr__(self) -> str:
        return f"Agent(name={self.name!r}, model={self.model!r})"

    # -- what the runner asks for ------------------------------------------------------------
    def provider(self, *, allow_model_requests: bool = True) -> ModelProvider:
        """The model provider of a run: an override if one is active, else ``self.model``."""
        model = _OVERRIDES.get().get(self.name, self.model)
        if isinstance(model, str):
            return get_provider(
                model,
                script=self.script,
                latency=self.latency,
                allow_model_requests=allow_model_requests,
            )
        return model

    def resolve_tools(self) -> dict[str, Tool]:
        """Tools by name, import paths imported now (once). ConfigError if one cannot be."""
        if self._tools_cache is None:
            out: dict[str, Tool] = {}
            for entry in self.tools:
                if isinstance(entry, str):
                    resolved = BUILTIN_TOOLS.get(entry) or _imported_tool(entry)
                else:
                    resolved = entry
                if resolved.name in out:
                    raise InvalidInput(f"agent {self.name!r} has two tools named {resolved.name!r}")
                out[resolved.name] = resolved
            self._tools_cache = out
        return self._tools_cache

    def resolve_output_type(self) -> Any:
        if isinstance(self.output_type, str):
            self.output_type = _import(self.output_type, "output_type")
        return self.output_type

    @contextlib.contextmanager
    def override(self, *, model: str | ModelProvider) -> Iterator[None]:
        """Within the block (and the tasks started in it), runs of agents with this name use
        ``model``: a model string or any ModelProvider, such as a ``ScriptedModel``."""
        if isinstance(model, str):
            provider_name(model)
        token = _OVERRIDES.set(MappingProxyType({**_OVERRIDES.get(), self.name: model}))
        try:
            yield
        finally:
            _OVERRIDES.reset(token)

    # -- specs -------------------------------------------------------------------------------
    def to_spec(self) -> dict[str, Any]:
        """A JSON-ready description from which :meth:`from_spec` rebuilds this agent.

        Tools are built-in names, import paths, or (for tools not importable by path) names
        that only a registry holding the same tool can resolve; ``output_type`` is a
        ``"module:Type"`` path, or None when the type has none (e.g. ``list[int]``).
        """

        def ref(entry: Tool | str) -> str:
            if isinstance(entry, str):
                return entry
            if BUILTIN_TOOLS.get(entry.name) is entry:
                return entry.name
            return object_path(entry) or entry.name

        output_type = self.output_type
        return {
            "name": self.name,
            "model": self.model if isinstance(self.model, str) else self.model.name,
            "instructions": self.instructions,
            "tools": [ref(t) for t in self.tools],
            "script": None if self.script is None else [dict(t) for t in self.script],
            "latency": self.latency,
            "max_steps": self.max_steps,
            "max_tokens": self.max_tokens,
            "output_type": output_type
            if output_type is None or isinstance(output_type, str)
            else object_path(output_type),
        }

    @classmethod
    def from_spec(
        cls,
        spec: Mapping[str, Any],
        *,
        trusted: bool = True,
        known_tools: Mapping[str, Tool | str] | None = None,
        known_types: Mapping[str, Any] | None = None,
    ) -> Agent:
        """Build an agent from a spec; InvalidInput names the bad field.

        With ``trusted=False`` nothing is imported: a tool must be a built-in or a key of
        ``known_tools``, and an ``output_type`` a key of ``known_types``.
        """
        if not isinstance(spec, Mapping):
            raise InvalidInput("an agent spec must be an object")
        unknown = sorted(set(spec) - set(SPEC_FIELDS))
        if unknown:
            raise _bad(
                unknown[0], "is not a field of an agent spec", "fields: " + ", ".join(SPEC_FIELDS)
            )
        if "name" not in spec:
            raise _bad("name", "is required")
        for key, types in (("model", str), ("instructions", str), ("tools", list)):
            if key in spec and not isinstance(spec[key], types):
                raise _bad(key, f"must be a {'list' if types is list else 'string'}")
        known_tools = known_tools or {}
        tools: list[Tool | str] = []
        for i, item in enumerate(spec.get("tools") or []):
            if not isinstance(item, str):
                raise _bad(f"tools[{i}]", "must be a tool name")
            known = known_tools.get(item)
            tools.append(
                known if known is not None else _tool_entry(item, f"tools[{i}]", trusted=trusted)
            )
        output_type = spec.get("output_type")
        if output_type is not None:
            if not isinstance(output_type, str):
                raise _bad("output_type", "must be a 'package.module:Type' path")
            if known_types and output_type in known_types:
                output_type = known_types[output_type]
            elif not trusted:
                raise _bad(
                    "output_type", f"names a type this deployment does not know: {output_type!r}"
                )
        return cls(
            name=spec["name"],
            model=spec.get("model", "scripted"),
            instructions=spec.get("instructions", ""),
            tools=tools,
            output_type=output_type,
            script=spec.get("script"),
            latency=spec.get("latency", 0.0),
            max_steps=spec.get("max_steps"),
            max_tokens=spec.get("max_tokens"),
        )

    # -- running -----------------------------------------------------------------------------
    async def _drive(self, input: str, recorder: EventRecorder, opts: RunOptions) -> RunResult:
        """One run with its lifecycle events, shaped like the ones the server's executor writes."""
        if not isinstance(input, str):
            raise InvalidInput("input must be a string")
        env = local_env(recorder, opts)
        recorder.emit(EventType.RUN_STARTED.value, {"attempt": 1})
        try:
            result = await execute(self, input, env)
        except AgentSDKError as exc:
            recorder.emit(EventType.RUN_FAILED.value, {"error": exc.to_dict()})
            raise
        except asyncio.CancelledError:
            recorder.emit(EventType.RUN_CANCELLED.value, {"reason": "cancelled"})
            raise
        except Exception as exc:
            error = {"code": "internal_error", "message": f"{type(exc).__name__}: {exc}"}
            recorder.emit(EventType.RUN_FAILED.value, {"error": error})
            raise
        usage = {**result.usage.to_dict(), "total_tokens": result.usage.total_tokens}
        recorder.emit(EventType.RUN_SUCCEEDED.value, {"output": result.text, "usage": usage})
        return dataclasses.replace(result, events=list(recorder.events))

    async def run(self, input: str, **options: Unpack[RunOptions]) -> RunResult:
        """Run to the end. Raises the run's error (QuotaExceeded, ModelError, ...) on failure."""
        return await self._drive(
            input, EventRecorder(options.get("run_id") or new_run_id()), options
        )

    def run_sync(self, input: str, **options: Unpack[RunOptions]) -> RunResult:
        """:meth:`run` for code without an event loop."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.run(input, **options))
        raise InvalidInput("run_sync() cannot be used inside an event loop; await agent.run()")

    async def stream(
        self, input: str, **options: Unpack[RunOptions]
    ) -> AsyncGenerator[Event, None]:
        """The run's events as they happen, model deltas included, ending with the terminal
        event. A failure is that terminal event (``run.failed``), not an exception."""
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        recorder = EventRecorder(options.get("run_id") or new_run_id(), queue)
        options = {"stream_deltas": True, **options}
        task = asyncio.ensure_future(self._drive(input, recorder, options))
        task.add_done_callback(lambda _t: queue.put_nowait(None))
        try:
            while (event := await queue.get()) is not None:
                yield event
            if not task.cancelled():
                exc = task.exception()
                if exc is not None and not (isinstance(exc, AgentSDKError) and recorder.events):
                    raise exc  # a bug, or bad input refused before the run started
        finally:
            if not task.done():  # the reader stopped early: stop the run too
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


demo = Agent(
    "demo",
    instructions="A scripted demo: it lists the working directory.",
    tools=["fs.list"],
    script=[
        {"tool": "fs.list", "arguments": {"path": "."}},
        {"text": "You asked: {input}\nThe working directory holds: {tool_result}"},
    ],
)


# -- the registry -------------------------------------------------------------------------------


def load_agents_file(path: str) -> list[Agent]:
    """Agents of a TOML (``[agents.NAME]`` tables) or YAML (``agents: {NAME: {...}}``) file.

    The file is operator configuration, so its tools may be ``package.module:function`` paths.
    """
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise ConfigError(
            f"agents file {path!r} must end in .toml, .yaml or .yml", hint="AGENT_SDK_AGENTS_PATH"
        )
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ConfigError(
            f"cannot read agents file {path!r}: {exc.strerror}", hint="AGENT_SDK_AGENTS_PATH"
        ) from None
    try:
        if suffix == ".toml":
            import tomllib

            data: Any = tomllib.loads(raw.decode("utf-8"))
        else:
            import yaml

            data = yaml.safe_load(raw)
    except Exception as exc:  # TOMLDecodeError, YAMLError, UnicodeDecodeError
        raise ConfigError(
            f"agents file {path!r} is not valid {suffix[1:].upper()}: {exc}"
        ) from None
    table = data.get("agents") if isinstance(data, dict) else None
    if not isinstance(table, dict):
        raise ConfigError(f"agents file {path!r} has no 'agents' table of agent definitions")
    agents = []
    for name, spec in table.items():
        where = f"{path}: agents.{name}"
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: an agent definition must be a table")
        if spec.get("name", name) != name:
            raise ConfigError(f"{where}: 'name' differs from the table name {name!r}")
        try:
            agents.append(Agent.from_spec({**spec, "name": str(name)}))
        except InvalidInput as exc:
            raise ConfigError(f"{where}: {exc.message}", hint=exc.hint) from None
    return agents


# A dotted module path, as `python -m` takes it (not a file name, not "module:attribute").
_MODULE_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")


def agents_in_module(module: str) -> list[Agent]:
    """The module-level Agent instances of a module, imported now.

    A spec that is not a module path, or a module that does not exist, is a ConfigError (the
    setting is wrong); a module that exists but raises while importing is an AgentImportError
    (its code is wrong), so the CLI can tell the two apart (exit 2 and 1).
    """
    if not _MODULE_PATH.fullmatch(module):
        raise ConfigError(
            f"agents module {module!r} is not a module path",
            hint="give a dotted module path such as myapp.agents (a .toml or .yaml file of "
            "agents goes in AGENT_SDK_AGENTS_PATH)",
        )
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module == missing or module.startswith(missing + ".")):
            raise ConfigError(
                f"agents module {module!r} not found: no module named {missing!r}",
                hint="run from the directory that holds it (it is looked for there first, as "
                "`python -m` does), or add its directory to PYTHONPATH",
            ) from None
        raise _import_failed(module, exc) from exc  # the module itself imports something absent
    except (Exception, SystemExit) as exc:  # whatever the module raises while it is imported
        raise _import_failed(module, exc) from exc
    found: dict[int, Agent] = {id(v): v for v in vars(mod).values() if isinstance(v, Agent)}
    if not found:
        raise ConfigError(f"agents module {module!r} defines no Agent at module level")
    return list(found.values())


def _import_failed(module: str, exc: BaseException) -> AgentImportError:
    reason = " ".join(str(exc).split()) or "(no message)"  # one line, whatever the module said
    return AgentImportError(
        f"agents module {module!r} raised while importing: {type(exc).__name__}: {reason}",
        hint="fix the module; rerun with --debug to see the traceback",
    )


class AgentRegistry:
    """The agents a deployment knows: the built-in ``demo``, an agents file and modules.

    Loading happens on first use (a CLI call that never touches agents does not import the
    users' modules) and once; :meth:`load` forces it, to fail early on bad configuration.
    """

    def __init__(
        self,
        modules: Sequence[str] = (),
        agents_file: str | None = None,
        *,
        agents: Iterable[Agent] = (),
    ) -> None:
        self.modules = tuple(modules)
        self.agents_file = agents_file
        self._extra = list(agents)
        self._agents: dict[str, Agent] | None = None
        self._origins: dict[str, str] = {}
        self._lock = threading.Lock()

    def _add(self, agents: dict[str, Agent], agent: Agent, origin: str) -> None:
        existing = agents.get(agent.name)
        if (
            existing is not None
            and existing is not agent
            and self._origins[agent.name] != "built-in"
        ):
            raise ConfigError(
                f"agent {agent.name!r} is defined twice: "
                f"in {self._origins[agent.name]} and in {origin}"
            )
        agents[agent.name] = agent  # a user's own "demo" replaces the built-in one
        self._origins[agent.name] = origin

    def load(self) -> dict[str, Agent]:
        with self._lock:
            if self._agents is None:
                agents: dict[str, Agent] = {}
                self._origins = {}
                self._add(agents, demo, "built-in")
                if self.agents_file:
                    for agent in load_agents_file(self.agents_file):
                        self._add(agents, agent, self.agents_file)
                for module in self.modules:
                    for agent in agents_in_module(module):
                        self._add(agents, agent, f"module {module}")
                for agent in self._extra:
                    self._add(agents, agent, "register()")
                self._agents = agents
            return self._agents

    def register(self, agent: Agent) -> None:
        """Add an agent from code (tests, embedding applications)."""
        agents = self.load()
        with self._lock:
            self._add(agents, agent, "register()")

    def names(self) -> list[str]:
        return sorted(self.load())

    def get(self, name: str) -> Agent:
        agents = self.load()
        if name in agents:
            return agents[name]
        close = difflib.get_close_matches(name, list(agents), n=1)
        raise NotFound(
            f"unknown agent {name!r}",
            hint=(f"did you mean {close[0]!r}? " if close else "")
            + "known agents: "
            + ", ".join(sorted(agents)),
        )

    def resolve(self, agent: str | Mapping[str, Any] | Agent) -> Agent:
        """A registered agent by name, or an inline spec checked without importing anything:
        its tools must be built-ins or tools of registered agents."""
        if isinstance(agent, Agent):
            return agent
        if isinstance(agent, str):
            return self.get(agent)
        if not isinstance(agent, Mapping):
            raise InvalidInput("agent must be a name or an agent spec object")
        tools: dict[str, Tool | str] = {}
        types: dict[str, Any] = {}
        for known in self.load().values():
            for entry in known.tools:
                if isinstance(entry, str):
                    tools[entry] = entry  # an import path the operator configured
                else:
                    tools[entry.name] = entry
                    path = object_path(entry)
                    if path:
                        tools[path] = entry
            ref = known.to_spec()["output_type"]
            if ref is not None:
                types[ref] = known.output_type
        return Agent.from_spec(agent, trusted=False, known_tools=tools, known_types=types)


__all__ = ["Agent", "AgentRegistry", "RunOptions", "RunResult", "demo", "load_agents_file"]
