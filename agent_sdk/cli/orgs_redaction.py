"""``agent-sdk orgs redaction show|set|add-pattern|remove-pattern|reset|preview``: what PII
redaction removes from an org's stored data.

The org is the one commands act in (``--org``, else the credential's own); on a server these
need ``admin:orgs``. Redaction itself is switched on per deployment with
``AGENT_SDK_PII_REDACTION_ENABLED=true``; a policy only says which built-in detectors an org
turns off and which patterns of its own it adds (see :mod:`agent_sdk.governance.redact_policy`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from agent_sdk.cli.context import command, current, sub_app
from agent_sdk.cli.output import Column, render_one, say
from agent_sdk.errors import InvalidInput

app = sub_app(
    help="PII redaction of the org's data: detectors and custom patterns.", no_args_is_help=True
)


def _detectors(row: dict[str, Any]) -> str:
    return ", ".join(
        d["name"] + ("" if d["enabled"] else " (off)") for d in row.get("detectors") or ()
    )


def _patterns(row: dict[str, Any]) -> str:
    patterns = row.get("patterns") or ()
    return "; ".join(f"{p['name']} {p['regex']} -> {p['placeholder']}" for p in patterns) or "-"


REDACTION_FIELDS = [
    Column("org", "org_id"),
    Column("redaction on", "enabled"),
    Column("built-in detectors", _detectors),
    Column("custom patterns", _patterns),
]
# The keys of `show -o json` that are not part of a policy (so its output can be edited and set).
_VIEW_ONLY = ("org_id", "enabled", "detectors")


@command(app, "show")
def show() -> None:
    """Show the org's redaction policy, and whether redaction is on where the command runs.

    Example: agent-sdk orgs redaction show -o json > policy.json
    """
    ctx = current()
    view = ctx.backend.get_redaction()
    if not view.enabled:
        say("note: AGENT_SDK_PII_REDACTION_ENABLED is off here: nothing is being redacted")
    render_one(view, REDACTION_FIELDS, ctx.output)


@command(app, "set")
def set_(
    disable: Annotated[
        list[str] | None,
        typer.Option(
            "--disable",
            metavar="DETECTOR",
            help="Turn a built-in detector off (email, phone, card, iban, ip, national_id, "
            "bearer_token, secret); repeatable.",
        ),
    ] = None,
    pattern: Annotated[
        list[str] | None,
        typer.Option(
            "--pattern",
            metavar="NAME=REGEX",
            help="A custom pattern, replaced by [NAME]; repeatable.",
        ),
    ] = None,
    file: Annotated[
        str | None,
        typer.Option(
            "--file",
            "-f",
            metavar="PATH",
            help="Start from a policy in JSON ('-': stdin), e.g. an edited `show -o json`.",
        ),
    ] = None,
) -> None:
    """Replace the org's policy: it becomes exactly what is given (the file, plus the flags).

    Example: agent-sdk orgs redaction set --disable ip --pattern 'employee_id=EMP-\\d{6}'
    """
    if file is None and not disable and not pattern:
        raise InvalidInput(
            "give --file, --disable or --pattern",
            hint="to go back to every built-in detector, use `agent-sdk orgs redaction reset`",
        )
    policy = _read(file) if file is not None else {}
    if disable:
        policy["disabled"] = [*_listed(policy, "disabled"), *disable]
    if pattern:
        policy["patterns"] = [*_listed(policy, "patterns"), *(_pattern(p) for p in pattern)]
    ctx = current()
    view = ctx.backend.set_redaction(policy)
    say(f"redaction policy of org {view.org_id} set")
    render_one(view, REDACTION_FIELDS, ctx.output)


@command(app, "add-pattern")
def add_pattern(
    name: Annotated[str, typer.Argument(metavar="NAME", help="lower_case name, e.g. employee_id.")],
    regex: Annotated[
        str, typer.Argument(metavar="REGEX", help="Python regex, repetitions bounded.")
    ],
    placeholder: Annotated[
        str | None,
        typer.Option("--placeholder", metavar="[TEXT]", help="Replacement (default: [NAME])."),
    ] = None,
) -> None:
    """Add a custom pattern to the org's policy, or replace the one of that name.

    Example: agent-sdk orgs redaction add-pattern employee_id 'EMP-\\d{6}'
    """
    ctx = current()
    view = ctx.backend.set_redaction_pattern(name, regex, placeholder)
    say(f"custom pattern {name} set for org {view.org_id}")
    render_one(view, REDACTION_FIELDS, ctx.output)


@command(app, "remove-pattern")
def remove_pattern(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The custom pattern.")],
) -> None:
    """Remove a custom pattern from the org's policy.

    Example: agent-sdk orgs redaction remove-pattern employee_id
    """
    ctx = current()
    view = ctx.backend.delete_redaction_pattern(name)
    say(f"custom pattern {name} removed from org {view.org_id}")
    render_one(view, REDACTION_FIELDS, ctx.output)


@command(app, "reset")
def reset(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Reset the org's policy: every built-in detector on, custom patterns removed.

    Example: agent-sdk orgs redaction reset --org acme --yes
    """
    from agent_sdk.cli.keys import confirm

    ctx = current()

    def question() -> str:
        return "Remove the org's custom redaction patterns and re-enable every detector?"

    confirm(ctx, question, yes=yes, refused="resetting the redaction policy")
    view = ctx.backend.reset_redaction()
    say(f"org {view.org_id} redacts with every built-in detector, no custom pattern")
    render_one(view, REDACTION_FIELDS, ctx.output)


@command(app, "preview")
def preview(
    text: Annotated[str, typer.Argument(metavar="TEXT", help="A sample ('-': read stdin).")],
) -> None:
    """Show what the org's policy would store for a sample text (nothing is stored).

    Example: agent-sdk orgs redaction preview 'mail jane@example.com, card 4111 1111 1111 1111'
    """
    ctx = current()
    sample = sys.stdin.read() if text == "-" else text
    result = ctx.backend.preview_redaction(sample)
    fields = [
        Column("redacted", "redacted"),
        Column("findings", lambda r: ", ".join(f"{k} {v}" for k, v in r["findings"].items())),
    ]
    render_one(result, fields, ctx.output)


def _pattern(spec: str) -> dict[str, str]:
    name, sep, regex = spec.partition("=")
    if not sep or not name or not regex:
        raise InvalidInput(
            f"--pattern {spec!r} is not NAME=REGEX", hint="e.g. --pattern 'employee_id=EMP-\\d{6}'"
        )
    return {"name": name.strip(), "regex": regex}


def _listed(policy: dict[str, Any], key: str) -> list[Any]:
    value = policy.get(key, [])
    if not isinstance(value, list):
        raise InvalidInput(f"the policy's {key!r} must be a list")
    return value


def _read(path: str) -> dict[str, Any]:
    try:
        raw = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise InvalidInput(f"{path} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{path} must hold a JSON object (a redaction policy)")
    return {k: v for k, v in data.items() if k not in _VIEW_ONLY}
