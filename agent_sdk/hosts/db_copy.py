"""The ``db copy`` host: one database copied into another, then verified.

The copy itself is :mod:`agent_sdk.store.copy`; this module wires it for the command: it reads
the two URLs, refuses a source that the server of ``agent-sdk up`` on this machine writes to, and
turns a copy that does not match into an error. The CLI asks, shows progress and renders.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from agent_sdk.errors import Conflict, CopyMismatch
from agent_sdk.store.copy import CopyReport, Progress, Target

if TYPE_CHECKING:
    from agent_sdk.config import Settings

__all__ = ["CopyReport", "Progress", "Target", "copy", "prepare", "verify"]


def prepare(
    settings: Settings,
    source: str,
    destination: str,
    *,
    live_source: bool,
    warn: Callable[[str], None] | None,
) -> tuple[Target, Target]:
    """The two databases, checked before anything is asked or read: ``warn`` hears of a password
    left in a URL; a source in use by ``agent-sdk up`` is refused unless ``live_source``."""
    from agent_sdk.store.copy import parse_target

    targets = (parse_target(source, "source"), parse_target(destination, "destination"))
    for flag, target in zip(("--from", "--to"), targets, strict=True):
        if target.secrets and warn is not None:
            warn(
                f"warning: the password in {flag} is visible to other users of this machine;"
                " use PGPASSWORD or ~/.pgpass"
            )
    if not live_source:
        _refuse_if_served(settings, targets[0])
    return targets


def copy(
    settings: Settings,
    source: str,
    destination: str,
    *,
    replace: bool,
    batch_size: int,
    live_source: bool,
    progress: Progress | None,
) -> CopyReport:
    from agent_sdk.store.copy import copy_database

    return copy_database(
        source,
        destination,
        replace=replace,
        batch_size=batch_size,
        progress=progress,
        live_source=live_source,
        worker_lease=settings.worker_lease,
    )


def verify(report: CopyReport) -> None:
    """Raise CopyMismatch (exit 1) for a copy that was rolled back because it did not match."""
    if not report.ok:
        bad = ", ".join(t.table for t in report.mismatches())
        raise CopyMismatch(
            f"the destination does not match the source in {bad}: the copy was rolled back",
            hint="the destination is unchanged; check for writers on it, then copy again",
            tables=[t.to_dict() for t in report.mismatches()],
        )


def _refuse_if_served(settings: Settings, source: Target) -> None:
    """The server `agent-sdk up` runs on this machine writes its SQLite file without leaving a
    trace in it (only workers record heartbeats): its state file tells."""
    from agent_sdk.hosts.up import read_server_state
    from agent_sdk.store.copy import IN_USE_HINT

    if source.path is None or not settings.database_url.startswith("sqlite:///"):
        return
    state = read_server_state(settings.server_state_path)
    if state is None:
        return
    try:
        same = settings.sqlite_path.resolve() == source.path.resolve()
    except (OSError, RuntimeError):  # a symlink loop is not the server's file
        same = False
    if same:
        raise Conflict(
            f"the source {source.display} is in use: the server of `agent-sdk up` (pid"
            f" {state['pid']}) writes to it",
            hint=IN_USE_HINT,
        )
