"""``agent-sdk completion bash|zsh|fish``: the shell completion scripts.

Typer 0.28 ships its own copy of click, and its runtime answers completion requests in its own
protocol (``_AGENT_SDK_COMPLETE=complete_bash``); the scripts therefore come from the completion
classes registered in that copy, so a script and the program answering it always agree.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from agent_sdk.cli.context import command, sub_app
from agent_sdk.cli.main import COMPLETE_VAR, PROG_NAME
from agent_sdk.cli.output import out, say

# The file each shell's completion loader looks for.
FILE_NAMES = {"bash": "agent-sdk.bash", "zsh": "_agent-sdk", "fish": "agent-sdk.fish"}


class Shell(StrEnum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def enable() -> None:
    """Register typer's completion classes (the runtime side of the scripts)."""
    from typer._completion_classes import completion_init

    completion_init()


def script(shell: str) -> str:
    from typer._click.shell_completion import get_completion_class
    from typer.core import TyperCommand

    enable()
    cls = get_completion_class(shell)
    if cls is None:  # pragma: no cover - the three shells are always registered
        raise typer.BadParameter(f"unsupported shell {shell!r}")
    root = TyperCommand(PROG_NAME)  # the script names the program, it never runs it
    return cls(root, {}, PROG_NAME, COMPLETE_VAR).source().strip() + "\n"


def write_all(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for shell, name in FILE_NAMES.items():
        path = directory / name
        path.write_text(script(shell), encoding="utf-8")
        written.append(path)
    return written


app = sub_app()


@command(app, "completion", output=False)
def completion(
    shell: Annotated[
        Shell | None,
        typer.Argument(metavar="[SHELL]", help="bash, zsh or fish.", case_sensitive=False),
    ] = None,
    write: Annotated[
        bool, typer.Option("--write", help="Write all three scripts to --dir.")
    ] = False,
    directory: Annotated[
        Path,
        typer.Option(
            "--dir", metavar="DIR", help="Where --write puts the scripts.", file_okay=False
        ),
    ] = Path("completions"),
) -> None:
    """Print the shell completion script.

    Example: agent-sdk completion bash > ~/.local/share/bash-completion/completions/agent-sdk
    """
    if write:
        for path in write_all(directory):
            say(f"wrote {path}")
        return
    if shell is None:
        raise typer.BadParameter("name a shell: bash, zsh or fish", param_hint="SHELL")
    out(script(shell.value).rstrip("\n"))
