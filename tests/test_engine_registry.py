"""Agent specs (to_spec / from_spec), inline spec errors, and the AgentRegistry's sources."""

from __future__ import annotations

import json
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from agent_sdk.engine import Agent, AgentRegistry
from agent_sdk.engine.agent import demo
from agent_sdk.errors import AgentImportError, ConfigError, InvalidInput, NotFound


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def write_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str) -> str:
    """A fresh importable module (a unique name, so sys.modules never serves an old one)."""
    name = unique("agents_mod")
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


MODULE = """
    from pydantic import BaseModel

    from agent_sdk.engine import Agent, tool


    class Verdict(BaseModel):
        ok: bool


    @tool
    def shout(text: str) -> str:
        '''Shout it.

        Args:
            text: What to shout.
        '''
        return text.upper()


    helper = Agent(
        "shouter",
        tools=[shout, "fs.list"],
        script=[{"tool": "shout", "arguments": {"text": "{input}"}}, {"text": "{tool_result}"}],
    )
    judge = Agent("judge", output_type=Verdict, script=[{"text": '{"ok": true}'}])
    same_again = helper  # a second reference to one agent is not a duplicate
"""


# -- the registry --------------------------------------------------------------------------------


def test_the_registry_always_has_demo() -> None:
    registry = AgentRegistry()
    assert registry.names() == ["demo"]
    assert registry.get("demo") is demo and registry.resolve("demo") is demo


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(NotFound, match="unknown agent 'dmeo'") as info:
        AgentRegistry().get("dmeo")
    assert "did you mean 'demo'" in (info.value.hint or "")
    assert "known agents: demo" in (info.value.hint or "")


def test_agents_from_a_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "agents.toml"
    path.write_text(
        textwrap.dedent(
            """
            [agents.support]
            instructions = "Help."
            tools = ["fs.read"]
            max_steps = 3
            script = [{text = "support: {input}"}]

            [agents.echo]
            model = "scripted:echo"
            """
        )
    )
    registry = AgentRegistry((), str(path))
    assert registry.names() == ["demo", "echo", "support"]
    support = registry.get("support")
    assert support.instructions == "Help." and support.max_steps == 3
    assert support.run_sync("hi").text == "support: hi"
    assert registry.get("echo").run_sync("ping").text == "ping"


def test_agents_from_a_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "agents.yml"
    path.write_text(
        textwrap.dedent(
            """
            agents:
              triage:
                name: triage
                tools: [fs.list]
                latency: 0
                script:
                  - text: "triaged {input}"
            """
        )
    )
    assert AgentRegistry((), str(path)).get("triage").run_sync("bug").text == "triaged bug"


@pytest.mark.parametrize(
    ("filename", "content", "words"),
    [
        ("agents.json", "{}", "must end in .toml, .yaml or .yml"),
        ("agents.toml", "[agents.x\n", "is not valid TOML"),
        ("agents.yaml", "agents: [unclosed", "is not valid YAML"),
        ("agents.yaml", "other: 1", "has no 'agents' table"),
        ("agents.toml", "[agents]\nx = 1", "agents.x: an agent definition must be a table"),
        ("agents.toml", '[agents.x]\nname = "y"', "differs from the table name"),
        ("agents.toml", "[agents.x]\nmax_steps = 0", "agents.x: agent field 'max_steps'"),
        ("agents.toml", '[agents.x]\ntools = ["fs.raed"]', "unknown tool 'fs.raed'"),
        ("agents.toml", "[agents.x]\ntemperature = 1", "'temperature' is not a field"),
        ("agents.toml", "[agents.x]\nscript = [{txt = 'a'}]", "script[0]: unknown key"),
    ],
)
def test_bad_agents_files_name_the_file_and_the_problem(
    tmp_path: Path, filename: str, content: str, words: str
) -> None:
    path = tmp_path / filename
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        AgentRegistry((), str(path)).load()
    assert words in info.value.message
    assert filename in info.value.message


def test_a_missing_agents_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read agents file") as info:
        AgentRegistry((), str(tmp_path / "nope.toml")).names()
    assert info.value.hint == "AGENT_SDK_AGENTS_PATH"


def test_agents_from_a_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = write_module(tmp_path, monkeypatch, MODULE)
    registry = AgentRegistry((module,))
    assert module not in sys.modules  # loading is lazy
    assert registry.names() == ["demo", "judge", "shouter"]
    assert registry.get("shouter").run_sync("quiet").text == "QUIET"
    assert registry.get("judge").run_sync("x").output.ok is True


@pytest.mark.parametrize(
    ("source", "error", "words"),
    [
        # The module exists but its code fails: AgentImportError (the CLI exits 1).
        ("raise RuntimeError('broken')", AgentImportError, "RuntimeError: broken"),
        ("import no_such_dependency_xyz", AgentImportError, "named 'no_such_dependency_xyz'"),
        ("def f(:\n    pass", AgentImportError, "SyntaxError"),
        ("import sys\nsys.exit(3)", AgentImportError, "SystemExit: 3"),
        ("raise ValueError('a\\nb\\n\\nc')", AgentImportError, "ValueError: a b c"),
        # The setting is wrong: ConfigError (the CLI exits 2).
        ("x = 1", ConfigError, "defines no Agent"),
        (
            "from agent_sdk.engine import Agent\na = Agent('twin')\nb = Agent('twin')",
            ConfigError,
            "'twin' is defined twice",
        ),
    ],
)
def test_bad_modules_are_errors_naming_the_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, error: type, words: str
) -> None:
    module = write_module(tmp_path, monkeypatch, source)
    with pytest.raises(error) as info:
        AgentRegistry((module,)).load()
    assert type(info.value) is error
    assert words in info.value.message and module in info.value.message
    assert "\n" not in info.value.message


@pytest.mark.parametrize(
    "spec",
    ["no_such_agents_mod", "no_such_agents_mod.agents", "myapp/agents.py", "myapp.agents:x", "",
     "..x", "a b", "x\ny"],
)  # fmt: skip
def test_a_missing_module_or_a_bad_spec_is_a_config_error(spec: str) -> None:
    with pytest.raises(ConfigError) as info:
        AgentRegistry((spec,)).names()
    assert type(info.value) is ConfigError
    assert info.value.message.startswith(f"agents module {spec!r}")


def test_an_agent_in_a_file_and_a_module_is_a_duplicate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = write_module(tmp_path, monkeypatch, MODULE)
    path = tmp_path / "agents.toml"
    path.write_text("[agents.judge]\n")
    with pytest.raises(ConfigError, match="'judge' is defined twice"):
        AgentRegistry((module,), str(path)).load()


def test_a_user_demo_replaces_the_builtin(tmp_path: Path) -> None:
    path = tmp_path / "agents.toml"
    path.write_text("[agents.demo]\nscript = [{text = 'mine'}]\n")
    assert AgentRegistry((), str(path)).get("demo").run_sync("x").text == "mine"


def test_register_adds_an_agent() -> None:
    registry = AgentRegistry()
    registry.register(Agent("extra"))
    assert registry.names() == ["demo", "extra"]


# -- specs ---------------------------------------------------------------------------------------


def test_to_spec_is_json_and_round_trips() -> None:
    agent = Agent(
        "spec",
        instructions="Do.",
        tools=["fs.read", "http.fetch"],
        script=[{"tool": "fs.read", "arguments": {"path": "a"}}, {"text": "t"}],
        latency=0.25,
        max_steps=4,
        max_tokens=500,
    )
    spec = agent.to_spec()
    assert spec == {
        "name": "spec",
        "model": "scripted",
        "instructions": "Do.",
        "tools": ["fs.read", "http.fetch"],
        "script": [
            {"tool_calls": [{"name": "fs.read", "arguments": {"path": "a"}}]},
            {"text": "t"},
        ],
        "latency": 0.25,
        "max_steps": 4,
        "max_tokens": 500,
        "output_type": None,
    }
    again = Agent.from_spec(json.loads(json.dumps(spec)))
    assert again.to_spec() == spec


def test_a_module_agent_round_trips_through_an_untrusted_spec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server path: the spec is stored with the run, and a worker rebuilds the agent from it
    with the registry's help, without importing anything the spec names."""
    module = write_module(tmp_path, monkeypatch, MODULE)
    registry = AgentRegistry((module,))
    spec = json.loads(json.dumps(registry.get("shouter").to_spec()))
    assert spec["tools"] == [f"{module}:shout", "fs.list"]
    rebuilt = registry.resolve(spec)
    assert rebuilt.run_sync("abc").text == "ABC"
    judge_spec = registry.get("judge").to_spec()
    assert judge_spec["output_type"] == f"{module}:Verdict"
    assert registry.resolve(judge_spec).run_sync("x").output.ok is True
    # A tool a registered agent holds may also be named by its tool name.
    by_name = registry.resolve({"name": "inline", "tools": ["shout"]})
    assert list(by_name.resolve_tools()) == ["shout"]


def test_import_paths_in_trusted_specs_are_resolved_lazily(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = write_module(tmp_path, monkeypatch, "def double(n: int) -> int:\n    return 2 * n\n")
    agent = Agent.from_spec(
        {
            "name": "lazy",
            "tools": [f"{module}:double"],
            "script": [{"tool": "double", "arguments": {"n": 21}}, {"text": "{tool_result}"}],
        }
    )
    assert module not in sys.modules
    assert agent.run_sync("x").text == "42"
    broken = Agent("broken", tools=["no_such_tools_mod_xyz:fn"], script=[{"text": "x"}])
    with pytest.raises(ConfigError, match="cannot import module 'no_such_tools_mod_xyz'"):
        broken.run_sync("x")


def test_untrusted_specs_import_nothing() -> None:
    """An API client must not be able to make the server import a module or expose an arbitrary
    function (os:system) as a tool."""
    registry = AgentRegistry()
    for name in ("os:system", "subprocess:run", "antigravity:fly"):
        with pytest.raises(InvalidInput, match="unknown tool"):
            registry.resolve({"name": "evil", "tools": [name]})
    assert "antigravity" not in sys.modules
    with pytest.raises(InvalidInput, match="output_type"):
        registry.resolve({"name": "evil", "output_type": "os:system"})


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ({"model": "scripted"}, "name", "is required"),
        ({"name": "bad name!"}, "name", "letters, digits"),
        ({"name": "x", "temperature": 0.1}, "temperature", "is not a field"),
        ({"name": "x", "model": "gpt4"}, "model", "unknown model provider"),
        ({"name": "x", "model": 4}, "model", "must be a string"),
        ({"name": "x", "instructions": ["a"]}, "instructions", "must be a string"),
        ({"name": "x", "tools": "fs.read"}, "tools", "must be a list"),
        ({"name": "x", "tools": [{"name": "fs.read"}]}, "tools[0]", "must be a tool name"),
        ({"name": "x", "tools": ["fs.read", "fs.reed"]}, "tools[1]", "unknown tool 'fs.reed'"),
        ({"name": "x", "script": "nope"}, "script", "list of turns"),
        ({"name": "x", "script": [{"text": "a"}, {"tool": 3}]}, "script", "script[1]"),
        ({"name": "x", "latency": -1}, "latency", "number of seconds"),
        ({"name": "x", "latency": True}, "latency", "number of seconds"),
        ({"name": "x", "max_steps": 0}, "max_steps", "positive integer"),
        ({"name": "x", "max_tokens": "many"}, "max_tokens", "positive integer"),
        ({"name": "x", "output_type": 3}, "output_type", "path"),
    ],
)
def test_inline_spec_errors_name_the_field(spec: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(InvalidInput) as info:
        AgentRegistry().resolve(spec)
    assert info.value.details["field"] == field
    assert f"agent field {field!r}" in info.value.message and words in info.value.message


def test_unknown_builtin_tool_suggests_the_closest() -> None:
    with pytest.raises(InvalidInput) as info:
        Agent("x", tools=["fs.reed"])
    assert "did you mean 'fs.read'" in (info.value.hint or "")


def test_resolve_refuses_other_things() -> None:
    with pytest.raises(InvalidInput, match="name or an agent spec"):
        AgentRegistry().resolve(["demo"])  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="spec must be an object"):
        Agent.from_spec("demo")  # type: ignore[arg-type]


def test_duplicate_tool_names_are_refused_when_resolved() -> None:
    from agent_sdk.engine.builtin_tools import BUILTIN_TOOLS

    agent = Agent("dup", tools=["fs.read", BUILTIN_TOOLS["fs.read"]])
    with pytest.raises(InvalidInput, match="two tools named 'fs.read'"):
        agent.resolve_tools()
