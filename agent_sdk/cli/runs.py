"""``agent-sdk runs create|list|show|events|cancel|retry|delete``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from agent_sdk.cli.context import (
    CLIContext,
    Cursor,
    OutputFormat,
    PageSize,
    command,
    current,
    sub_app,
)
from agent_sdk.cli.output import (
    Column,
    out,
    render_event,
    render_list,
    render_one,
    render_page,
    say,
    when,
)
from agent_sdk.errors import InvalidInput, NotFound, RunNotSucceeded
from agent_sdk.records import Deletion, Event, Run, RunStatus
from agent_sdk.times import resolve_since

app = sub_app(help="Create, list, watch and cancel agent runs.", no_args_is_help=True)

RUN_COLUMNS = [
    Column("ID", "id"),
    Column("STATUS", "status"),
    Column("AGENT", "agent", 24),
    Column("SESSION", "session_id", 24),
    Column("CREATED", lambda r: when(r.get("created_at"))),
    Column("INPUT", "input", 40),
]
RUN_FIELDS = [
    Column("id", "id"),
    Column("agent", "agent"),
    Column("status", "status"),
    Column("session", "session_id"),
    Column("created", lambda r: when(r.get("created_at"))),
    Column("started", lambda r: when(r.get("started_at"))),
    Column("finished", lambda r: when(r.get("finished_at"))),
    Column("steps", "steps"),
    Column("attempts", "attempts"),
    Column("usage", "usage"),
    Column("metadata", "metadata"),
    Column("input", "input", 200),
    Column("output", "output", 500),
    Column("error", lambda r: (r.get("error") or {}).get("message")),
]
# The receipt of an erasure (runs delete, sessions delete): ids and counts only.
DELETION_COLUMNS = [
    Column("DELETED", "kind"),
    Column("ID", "id"),
    Column("RUNS", "runs"),
    Column("EVENTS", "events"),
    Column("IDEMPOTENCY KEYS", "idempotency_keys"),
]


# -- option parsing -------------------------------------------------------------------------------


def _statuses(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    out = []
    for value in values:
        for part in value.split(","):
            word = part.strip().lower()
            if word not in {s.value for s in RunStatus}:
                known = ", ".join(s.value for s in RunStatus)
                raise typer.BadParameter(
                    f"unknown status {part!r}; use one of: {known}", param_hint="'--status'"
                )
            out.append(word)
    return out


def _metadata(pairs: list[str] | None) -> dict[str, str] | None:
    if not pairs:
        return None
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="'--metadata'")
        out[key.strip()] = value
    return out


def _load_data(path: Path, what: str) -> Any:
    """A JSON, YAML or TOML document, by file extension (JSON, then YAML, when unknown)."""
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read {what} {str(path)!r}: {exc.strerror}") from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            import tomllib

            return tomllib.loads(text)
        if suffix == ".json" or (suffix not in (".yaml", ".yml") and text.lstrip()[:1] in "[{"):
            import json

            return json.loads(text)
        import yaml

        return yaml.safe_load(text)
    except Exception as exc:  # JSONDecodeError, YAMLError, TOMLDecodeError
        raise InvalidInput(f"{what} {str(path)!r} is not valid: {exc}") from None


def _read_input(text: str | None, file: Path | None, ctx: CLIContext) -> str:
    if text is not None and file is not None:
        raise InvalidInput("give --input or --input-file, not both")
    if file is not None:
        try:
            return file.read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(f"cannot read input file {str(file)!r}: {exc.strerror}") from None
    if text == "-":
        if sys.stdin.isatty():
            if ctx.options.no_input:
                raise InvalidInput("--input - reads stdin, which is a terminal (--no-input)")
            say("reading the input from stdin; end it with Ctrl-D")
        return sys.stdin.read()
    if text is None:
        raise InvalidInput(
            "a run needs an input",
            hint="give --input TEXT, --input - (read stdin) or --input-file PATH",
        )
    return text


# -- watching -------------------------------------------------------------------------------------


def watch(
    ctx: CLIContext, run_id: str, *, after: int = 0, show: OutputFormat | None = None
) -> Event | None:
    """Follow a run's events to its terminal event (printing each when ``show`` is set) and
    return that event. Ctrl-C: a local run is cancelled (it lives in this process); a run on a
    server goes on, and the user is told how to resume."""
    backend = ctx.backend
    last: Event | None = None
    try:
        for event in backend.follow_events(run_id, after=after):
            last = event
            if show is not None:
                render_event(event, show)
            if event.terminal:
                return event
    except KeyboardInterrupt:
        seq = last.seq if last else after
        if backend.kind == "local":
            say(f"\ninterrupted: cancelling run {run_id} (it runs in this process)")
            backend.cancel_run(run_id)
        else:
            say(
                f"\nstopped watching; run {run_id} goes on on the server. Resume with:\n"
                f"  agent-sdk runs events {run_id} --follow --after {seq}"
            )
        raise
    return last


def _check_outcome(run: Run) -> None:
    if run.status is RunStatus.SUCCEEDED:
        return
    error = run.error or {}
    message = error.get("message") or run.status.value
    raise RunNotSucceeded(
        f"run {run.id} {run.status.value}: {message}",
        hint=f"see its events: agent-sdk runs events {run.id}",
        run_id=run.id,
        status=run.status.value,
    )


# -- commands -------------------------------------------------------------------------------------


@command(app, "create")
def create(
    agent: Annotated[
        str | None,
        typer.Option(
            "--agent", "-a", metavar="NAME", help="Agent name (or the name of --agent-file)."
        ),
    ] = None,
    agent_file: Annotated[
        Path | None,
        typer.Option(
            "--agent-file",
            metavar="FILE",
            help="Inline agent spec (.toml, .json or .yaml).",
            dir_okay=False,
        ),
    ] = None,
    input: Annotated[
        str | None,
        typer.Option("--input", "-i", metavar="TEXT", help="The input text; '-' reads stdin."),
    ] = None,
    input_file: Annotated[
        Path | None,
        typer.Option(
            "--input-file", metavar="PATH", help="Read the input from a file.", dir_okay=False
        ),
    ] = None,
    session: Annotated[
        str | None, typer.Option("--session", "-s", metavar="ID", help="Session to add the run to.")
    ] = None,
    metadata: Annotated[
        list[str] | None,
        typer.Option("--metadata", "-m", metavar="KEY=VALUE", help="Metadata; repeatable."),
    ] = None,
    script: Annotated[
        Path | None,
        typer.Option(
            "--script",
            metavar="FILE",
            help="JSON/YAML list of scripted model turns.",
            dir_okay=False,
        ),
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Stream the run's events until it ends.")
    ] = False,
    wait: Annotated[bool, typer.Option("--wait", "-w", help="Wait for the run to end.")] = False,
    idempotency_key: Annotated[
        str | None,
        typer.Option(
            "--idempotency-key",
            metavar="KEY",
            help="Repeating the command with the same KEY and request returns the first run "
            "instead of starting another (default: a new key, printed on stderr).",
        ),
    ] = None,
) -> None:
    """Start a run of an agent.

    Every create sends an idempotency key: give one with --idempotency-key (a CI step can use
    its job and attempt ids) and a retried step returns the run the first attempt started.

    Example: agent-sdk runs create --agent demo --input "list the files" --follow
    """
    ctx = current()
    fmt = ctx.output
    if follow and fmt in (OutputFormat.yaml, OutputFormat.csv):
        raise InvalidInput("--follow prints table, json or jsonl", hint="use -o json or -o jsonl")
    spec: str | dict[str, Any]
    if agent_file is not None:
        loaded = _load_data(agent_file, "agent file")
        if not isinstance(loaded, dict):
            raise InvalidInput(f"agent file {str(agent_file)!r} must hold one agent spec object")
        spec = {**loaded, **({"name": agent} if agent else {})}
    elif agent:
        spec = agent
    else:
        raise InvalidInput("which agent?", hint="give --agent NAME or --agent-file spec.toml")
    text = _read_input(input, input_file, ctx)
    turns = None
    if script is not None:
        turns = _load_data(script, "script")
        if not isinstance(turns, list):
            raise InvalidInput(
                f"script {str(script)!r} must be a list of turns", hint='e.g. [{"text": "hi"}]'
            )
    backend = ctx.backend
    if idempotency_key is None:
        # Printed before sending: if the answer is lost (a timeout, a dropped connection), the
        # key is what lets the retry find the run instead of starting a second one.
        import uuid

        idempotency_key = str(uuid.uuid4())
        say(
            f"idempotency key: {idempotency_key}; re-run with --idempotency-key "
            f"{idempotency_key} to make a retry safe"
        )
    run = backend.create_run(
        spec,
        text,
        session_id=session,
        metadata=_metadata(metadata),
        script=turns,
        idempotency_key=idempotency_key,
    )
    say(f"created run {run.id}")
    # A local backend executes inline runs in this process, so it waits for them; in queue
    # mode a worker process executes the run and this command returns once it is queued.
    local = backend.kind == "local" and ctx.settings.execution_mode == "inline"
    if backend.kind == "local" and not local and not (follow or wait):
        say("queued for a worker (agent-sdk worker executes it)")
    if follow:
        watch(ctx, run.id, show=fmt)
        final = backend.get_run(run.id)
        if fmt is OutputFormat.table and final.output:
            out(final.output)
        _check_outcome(final)
        return
    if wait or local:
        if local and not wait:
            say("the run executes in this process; waiting for it (--follow shows its events)")
        watch(ctx, run.id)
        run = backend.get_run(run.id)
    render_one(run, RUN_FIELDS, fmt)
    if wait:
        _check_outcome(run)


@command(app, "list")
def list_(
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status",
            metavar="STATUS",
            help="Only runs in this status (queued, running, succeeded, failed, cancelled, "
            "dead); repeatable or comma-separated.",
        ),
    ] = None,
    session: Annotated[
        str | None, typer.Option("--session", "-s", metavar="ID", help="Only runs of this session.")
    ] = None,
    limit: PageSize = 50,
    cursor: Cursor = None,
) -> None:
    """List runs, newest first.

    Example: agent-sdk runs list --status failed --limit 20
    """
    ctx = current()
    statuses = _statuses(status)
    page = ctx.backend.list_runs(status=statuses, session_id=session, limit=limit, cursor=cursor)
    render_page(page, RUN_COLUMNS, ctx.output, empty="no runs")


@command(app, "show")
def show(run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The run.")]) -> None:
    """Show one run."""
    ctx = current()
    render_one(ctx.backend.get_run(run_id), RUN_FIELDS, ctx.output)


@command(app, "events")
def events(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The run.")],
    after: Annotated[
        int,
        typer.Option(
            "--after", min=0, metavar="SEQ", help="Only events after this sequence number."
        ),
    ] = 0,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events until the run ends.")
    ] = False,
) -> None:
    """Print a run's events; each line starts with its sequence number.

    Example: agent-sdk runs events run_01J... --follow --after 12
    """
    ctx = current()
    fmt = ctx.output
    backend = ctx.backend
    if follow:
        if fmt in (OutputFormat.yaml, OutputFormat.csv):
            raise InvalidInput("--follow prints table, json or jsonl", hint="use -o jsonl")
        last = watch(ctx, run_id, after=after, show=fmt)
        if last is None:  # the run had ended at or before `after`: nothing to print
            say(f"run {run_id} has ended; no events after {after}")
        if last is None or last.type != "run.succeeded":
            _check_outcome(backend.get_run(run_id))  # the exit code says how it ended
        return
    collected: list[Event] = []
    while True:  # every page, so a long run prints completely
        page = backend.list_events(run_id, after=after, limit=1000)
        collected.extend(page)
        if len(page) < 1000:
            break
        after = page[-1].seq
    if fmt is OutputFormat.table:
        if not collected:
            say("no events")
        for event in collected:
            render_event(event, fmt)
        return
    render_list(collected, [], fmt, empty="no events")


@command(app, "cancel")
def cancel(run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The run.")]) -> None:
    """Cancel a queued or running run (a finished run is left as it is)."""
    ctx = current()
    run = ctx.backend.cancel_run(run_id)
    if run.status.terminal and run.status is not RunStatus.CANCELLED:
        say(f"run {run.id} had already {run.status.value}")
    render_one(run, RUN_FIELDS, ctx.output)


@command(app, "retry")
def retry(
    run_id: Annotated[
        str | None,
        typer.Argument(metavar="[RUN_ID]", help="The run (or give --status for many)."),
    ] = None,
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status",
            metavar="STATUS",
            help="Retry every run in this status (failed, dead, cancelled); repeatable or "
            "comma-separated.",
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="AGE|TIME",
            help="With --status: only runs created since 30m, 1h, 2d ago, or an ISO time.",
        ),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Retry many runs without asking.")
    ] = False,
) -> None:
    """Queue a failed, dead or cancelled run again (its attempts are kept and the new attempt
    resumes from what the earlier ones recorded).

    Example: agent-sdk runs retry run_01J...
    Example: agent-sdk runs retry --status failed,dead --since 1h --yes
    """
    ctx = current()
    backend = ctx.backend
    if run_id is not None:
        if status or since is not None:
            raise InvalidInput("give a RUN_ID or --status/--since, not both")
        run = backend.retry_run(run_id)
        say(f"retrying run {run.id} (attempt {run.attempts + 1})")
        render_one(run, RUN_FIELDS, ctx.output)
        return
    if since is not None:
        resolve_since(since, "--since")  # a usage error before the question, not after it
    statuses = _statuses(status)
    if not statuses:
        raise InvalidInput(
            "which runs?", hint="give a RUN_ID, or --status failed (with --since 1h) for many"
        )
    from agent_sdk.cli.keys import confirm

    what = f"every {' or '.join(statuses)} run" + (f" created since {since}" if since else "")
    confirm(ctx, lambda: f"Retry {what}?", yes=yes, refused=f"retrying {what}")
    runs = backend.retry_runs(statuses, since)
    say(f"retried {len(runs)} run{'s' if len(runs) != 1 else ''}")
    render_list(runs, RUN_COLUMNS, ctx.output, empty="")


@command(app, "delete")
def delete(
    run_ids: Annotated[
        list[str],
        typer.Argument(metavar="RUN_ID...", help="The runs to erase.", show_default=False),
    ],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Erase runs with their events, tool outputs and usage. This cannot be undone.

    A queued or running run is erased too; its attempt stops at its next step. Each erasure
    leaves an audit record (ids and counts, no content). Afterwards the run is not found
    anywhere. Ids that are not found are reported; the others are still erased (exit 1).

    Example: agent-sdk runs delete run_01J... --yes
    """
    ctx = current()
    backend = ctx.backend
    ids = list(dict.fromkeys(run_ids))  # once each, in the order given
    what = f"run {ids[0]}" if len(ids) == 1 else f"{len(ids)} runs"

    def question() -> str:
        if len(ids) == 1:
            run = backend.get_run(ids[0])  # a typo fails here, before anyone is asked
            about = f"run {run.id} ({run.status.value}, agent {run.agent})"
        else:
            about = f"{what} ({', '.join(ids[:5])}{', ...' if len(ids) > 5 else ''})"
        return f"Erase {about} with all events? This cannot be undone"

    from agent_sdk.cli.keys import confirm

    confirm(ctx, question, yes=yes, refused=f"erasing {what}")
    done: list[Deletion] = []
    missing: list[str] = []
    try:
        for run_id in ids:
            try:
                done.append(backend.delete_run(run_id))
            except NotFound:
                missing.append(run_id)
    finally:  # an outage halfway still shows what was erased before it
        for d in done:
            say(f"erased run {d.id} ({d.events} event{'s' if d.events != 1 else ''})")
        render_list(done, DELETION_COLUMNS, ctx.output, empty="")
    if missing:
        raise NotFound(
            f"{len(missing)} of {len(ids)} runs not found: {', '.join(missing)}",
            hint="check the ids (agent-sdk runs list); runs of other orgs are not found either",
        )
