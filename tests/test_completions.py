"""completions/ holds the scripts `agent-sdk completion SHELL` prints; they must not go stale."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent_sdk.cli.completion import FILE_NAMES, script
from agent_sdk.cli.main import app

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("shell", sorted(FILE_NAMES))
def test_completion_files_match_a_fresh_generation(shell: str) -> None:
    stored = (ROOT / "completions" / FILE_NAMES[shell]).read_text(encoding="utf-8")
    assert stored == script(shell), "completions/ is stale: run agent-sdk completion --write"


@pytest.mark.parametrize("shell", sorted(FILE_NAMES))
def test_completion_prints_the_script(shell: str) -> None:
    result = CliRunner().invoke(app, ["completion", shell])
    assert result.exit_code == 0
    assert result.stdout == script(shell)
    assert "_AGENT_SDK_COMPLETE" in result.stdout


def test_completion_write_puts_all_three_files(tmp_path: Path) -> None:
    out = tmp_path / "completions"
    result = CliRunner().invoke(app, ["completion", "--write", "--dir", str(out)])
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(FILE_NAMES.values())


def test_completion_without_a_shell_is_a_usage_error() -> None:
    assert CliRunner().invoke(app, ["completion"]).exit_code == 2


def test_the_program_answers_the_bash_script() -> None:
    """What the bash script sends, the program answers: the commands of the first word."""
    env = dict(
        os.environ, _AGENT_SDK_COMPLETE="complete_bash", COMP_WORDS="agent-sdk ru", COMP_CWORD="1"
    )
    code = "from agent_sdk.cli.main import main; main()"
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.split() == ["runs"], result.stderr
