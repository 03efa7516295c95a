"""docs/cli.md is generated from the commands' --help; it must match a fresh generation."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_cli_docs", ROOT / "scripts" / "gen_cli_docs.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_up_to_date() -> None:
    fresh = load_generator().generate()
    current = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert current == fresh, "docs/cli.md is stale: run python scripts/gen_cli_docs.py"


def test_cli_reference_covers_every_command() -> None:
    text = load_generator().generate()
    for path in (
        "agent-sdk runs create",
        "agent-sdk runs events",
        "agent-sdk sessions show",
        "agent-sdk db status",
        "agent-sdk up",
        "agent-sdk serve",
        "agent-sdk completion",
    ):
        assert f"## {path}\n" in text
