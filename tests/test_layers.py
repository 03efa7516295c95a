"""The layers of agent_sdk, enforced: which package may import which, and who reads the environment.

This file is the source of truth for the allowed imports; docs/architecture.md shows the same
table in prose and must be kept in step with ``ALLOWED`` below.

How the graph is built: every ``.py`` file under ``agent_sdk/`` is parsed with ``ast`` and every
``import`` and ``from ... import`` in it counts, wherever it sits: at the top, inside a function
(the lazy imports that keep the CLI's start-up cheap are still dependencies), and under
``if TYPE_CHECKING:``. Type-only imports get no narrower table: a signature that names a core
type ties the module to the core as surely as a call does (a client that must show a
``core.retention.SweepReport`` cannot be shipped without the core), so they follow the same rules.

Each module belongs to one layer: a top-level package (``cli``, ``tui``, ``backend``, ``server``,
``hosts``, ``core``, ``engine``, ``store``, ``queue``, ``security``, ``governance``), ``base``
(the leaf modules everybody may use: ``config``, ``errors``, ``records`` and small helpers such as
``masking`` or ``times``), or ``api`` (the package root, whose public names resolve lazily from the
layers below). A module not in any layer fails the test: a new top-level module is a decision to
write down here. Imports within a layer, and imports of ``base``, are always allowed.

A row of ``ALLOWED`` is a layer or a single module; the most specific row wins, which is how
``LocalBackend`` alone may reach the core while the rest of ``backend/`` (the protocol and
``HttpBackend``) needs only ``base``.

Process hosts are the composition roots: ``agent_sdk/hosts/`` holds one module per process that
``agent-sdk`` starts (``up``, ``serve``, ``worker``, ``scheduler``, ``db copy``), and only those
may wire every layer together. The CLI may call them, nothing else may.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "agent_sdk"

#: Leaf modules every layer may import. They import only each other.
BASE = frozenset(
    {
        "_version",
        "api_key_format",
        "audit_anchor",
        "canonical",
        "config",
        "config_checks",
        "cursors",
        "errors",
        "ids",
        "masking",
        "private_files",
        "records",
        "settings",
        "sqlite_busy",
        "text",
        "times",
    }
)

LAYERS = frozenset(
    {
        "cli",
        "tui",
        "backend",
        "server",
        "hosts",
        "core",
        "engine",
        "store",
        "queue",
        "security",
        "governance",
    }
)

#: The process hosts, by the module that wires each. ``scheduler`` is reserved: when the scheduler
#: process arrives it is wired there, and nowhere else.
HOSTS = {
    "up": "agent_sdk.hosts.up",
    "serve": "agent_sdk.hosts.serve",
    "worker": "agent_sdk.hosts.worker",
    "scheduler": "agent_sdk.hosts.scheduler",
    "db copy": "agent_sdk.hosts.db_copy",
}

EVERYTHING = frozenset(LAYERS - {"cli", "tui", "hosts"})

#: Which layers a layer (or a single module) may import, besides itself and ``base``.
ALLOWED: dict[str, frozenset[str]] = {
    # The package root re-exports the public API; its names resolve lazily from these layers.
    "api": frozenset({"engine", "core", "store", "backend"}),
    # The edges: the CLI and the TUI reach data only through a Backend; the CLI also starts
    # the process hosts.
    "cli": frozenset({"backend", "hosts"}),
    "tui": frozenset({"backend"}),
    # The Backend protocol and HttpBackend need only records and errors; LocalBackend runs the
    # core in-process.
    "backend": frozenset(),
    "agent_sdk.backend.local": frozenset({"core"}),
    # The HTTP server calls the core, and security for its auth dependencies.
    "server": frozenset({"core", "security"}),
    # The composition roots wire everything.
    "hosts": EVERYTHING,
    # The core drives the rest.
    "core": frozenset({"engine", "security", "governance", "store", "queue"}),
    # Below the core: no policy in a store or a queue, no HTTP in the agent loop.
    "engine": frozenset(),
    "store": frozenset(),
    "queue": frozenset(),
    "security": frozenset(),
    "governance": frozenset(),
}


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    path: Path
    line: int

    def __str__(self) -> str:
        where = f"{self.path.relative_to(ROOT)}:{self.line}"
        source, target = layer_of(self.source), layer_of(self.target)
        return f"{where}: {self.source} ({source}) -> {self.target} ({target})"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> str:
    parts = module.split(".")
    if parts == ["agent_sdk"]:
        return "api"
    if parts[1] in BASE:
        return "base"
    if parts[1] in LAYERS:
        return parts[1]
    return "?"


def _lazy_exports() -> dict[str, str]:
    """The root's ``_EXPORTS`` table: ``from agent_sdk import Agent`` reaches the module behind
    the name, not just the root."""
    tree = ast.parse(MODULES["agent_sdk"].read_text())
    for node in tree.body:
        if isinstance(node, ast.AnnAssign | ast.Assign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in targets):
                assert node.value is not None
                value = ast.literal_eval(node.value)
                assert isinstance(value, dict)
                return value
    raise AssertionError("agent_sdk/__init__.py has no _EXPORTS table")


EXPORTS = _lazy_exports()


def _owning_module(name: str) -> str | None:
    """The agent_sdk module that ``name`` (a module or something inside one) lives in."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _targets(node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
        return
    assert node.level == 0, "agent_sdk uses absolute imports only"
    module = node.module or ""
    for alias in node.names:
        full = f"{module}.{alias.name}"
        if full in MODULES:
            yield full
        elif module == "agent_sdk" and alias.name in EXPORTS:
            yield EXPORTS[alias.name]
        else:
            yield module


def imports() -> Iterator[Edge]:
    for source, path in MODULES.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for name in _targets(node):
                target = _owning_module(name) if name.startswith("agent_sdk") else None
                if target is not None and target != source:
                    yield Edge(source, target, path, node.lineno)


def allowed_row(module: str) -> str:
    """The most specific row of ``ALLOWED`` for a module: its own, a package's, or its layer's."""
    name = module
    while name:
        if name in ALLOWED:
            return name
        name = name.rpartition(".")[0]
    return layer_of(module)


def is_allowed(edge: Edge) -> bool:
    source, target = layer_of(edge.source), layer_of(edge.target)
    if source == target or target == "base":
        return True
    if target == "api":  # a plain name of the root (``__version__``); base stays a leaf
        return source != "base"
    return target in ALLOWED.get(allowed_row(edge.source), frozenset())


def test_every_module_has_a_layer() -> None:
    unplaced = sorted(m for m in MODULES if layer_of(m) == "?")
    assert not unplaced, "modules outside every layer (add them to BASE or LAYERS): " + ", ".join(
        unplaced
    )


def test_imports_follow_the_allowed_table() -> None:
    offending = [e for e in imports() if not is_allowed(e)]
    lines = dict.fromkeys(map(str, offending))  # one line per import statement, in file order
    assert not offending, (
        "imports outside the allowed table (ALLOWED in tests/test_layers.py; a rule that has to"
        " break is a design question, see docs/architecture.md):\n" + "\n".join(lines)
    )


#: Rows kept before any module needs them, because the design names them: the TUI has not been
#: written yet, and a host module may not need every layer.
RESERVED_ROWS = frozenset({"tui", "hosts"})


def test_every_allowed_row_is_used() -> None:
    """A row that allows a layer nobody imports is a loosening nobody needs; drop it."""
    used: set[tuple[str, str]] = set()
    for edge in imports():
        row = allowed_row(edge.source)
        target = layer_of(edge.target)
        if target in ALLOWED.get(row, frozenset()):
            used.add((row, target))
    unused = sorted(
        (row, target)
        for row, targets in ALLOWED.items()
        for target in targets
        if (row, target) not in used and row not in RESERVED_ROWS
    )
    assert not unused, f"rows of ALLOWED no import uses: {unused}"


ENV_READS = frozenset({"environ", "getenv", "putenv", "unsetenv", "environb", "getenvb"})


def environment_reads() -> Iterator[str]:
    for module, path in MODULES.items():
        if module == "agent_sdk.config":
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            hit = (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "os"
                and node.attr in ENV_READS
            ) or (
                isinstance(node, ast.ImportFrom)
                and node.module == "os"
                and any(a.name in ENV_READS for a in node.names)
            )
            if hit:
                yield f"{path.relative_to(ROOT)}:{node.lineno}"  # type: ignore[attr-defined]


def test_only_config_reads_the_environment() -> None:
    reads = list(environment_reads())
    assert not reads, "the environment is read outside agent_sdk/config.py:\n" + "\n".join(reads)


def test_each_host_is_one_module() -> None:
    """Every existing hosts module is a named process host, and each named host that exists
    is a single module (not a package that could grow a second wiring)."""
    hosts = {m for m in MODULES if layer_of(m) == "hosts" and m != "agent_sdk.hosts"}
    assert hosts <= set(HOSTS.values()), f"not a named process host: {hosts - set(HOSTS.values())}"
    for module in hosts:
        assert MODULES[module].name != "__init__.py", f"{module} must be one module"


def _edge(source: str, target: str) -> Edge:
    return Edge(source, target, MODULES["agent_sdk"], 1)


def test_the_table_says_no_where_the_design_says_no() -> None:
    """The rules themselves, on edges that may or may not exist today."""
    refused = [
        ("agent_sdk.cli.runs", "agent_sdk.server.app"),
        ("agent_sdk.cli.runs", "agent_sdk.core.runtime"),
        ("agent_sdk.cli.runs", "agent_sdk.store.sqlite"),
        ("agent_sdk.backend.http", "agent_sdk.core.runs"),
        ("agent_sdk.backend.base", "agent_sdk.governance.audit"),
        ("agent_sdk.server.app", "agent_sdk.hosts.serve"),
        ("agent_sdk.server.app", "agent_sdk.store.sqlite"),
        ("agent_sdk.core.runs", "agent_sdk.server.app"),
        ("agent_sdk.core.runs", "agent_sdk.backend.local"),
        ("agent_sdk.store.sqlite", "agent_sdk.core.runs"),
        ("agent_sdk.queue.sqs", "agent_sdk.security.api_key_secrets"),
        ("agent_sdk.engine.runner", "agent_sdk.store.sqlite"),
        ("agent_sdk.governance.audit", "agent_sdk.store.sqlite"),
        ("agent_sdk.records", "agent_sdk.core.runs"),
        ("agent_sdk.config", "agent_sdk"),
    ]
    allowed = [
        ("agent_sdk.cli.runs", "agent_sdk.backend.base"),
        ("agent_sdk.cli.server_cmds", "agent_sdk.hosts.up"),
        ("agent_sdk.backend.local", "agent_sdk.core.runtime"),
        ("agent_sdk.backend.http", "agent_sdk.records"),
        ("agent_sdk.server.deps", "agent_sdk.security.scopes"),
        ("agent_sdk.hosts.serve", "agent_sdk.server.app"),
        ("agent_sdk.core.worker", "agent_sdk.queue.base"),
        ("agent_sdk.store.sqlite", "agent_sdk.errors"),
        ("agent_sdk.server.app", "agent_sdk"),
    ]
    assert [e for e in refused if is_allowed(_edge(*e))] == []
    assert [e for e in allowed if not is_allowed(_edge(*e))] == []


def test_the_graph_sees_lazy_and_type_only_imports() -> None:
    """Imports inside a function and under TYPE_CHECKING are edges like any other."""
    edges = {(e.source, e.target) for e in imports()}
    assert ("agent_sdk.cli.server_cmds", "agent_sdk.hosts.up") in edges  # inside the command
    assert ("agent_sdk", "agent_sdk.core.runtime") in edges  # under TYPE_CHECKING
