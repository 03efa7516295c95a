"""The state of one CLI call: the global options, the Settings built from them, and the Backend.

Global options are accepted on the root (``agent-sdk --local runs list``) and on every leaf
(``agent-sdk runs list --local``). The root callback and :func:`command` both store what they
parsed on one :class:`CLIContext`; a value given on the leaf wins over the root's.

Settings and the Backend are built on first use, so ``--help``, ``version`` and ``completion``
never read a config file or open a database.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from typer import _click
from typer.core import TyperCommand

from agent_sdk.errors import AgentSDKError, AuthenticationError, BackendUnavailable, InvalidInput

if TYPE_CHECKING:
    from agent_sdk.backend.base import Backend
    from agent_sdk.config import Settings

F = TypeVar("F", bound=Callable[..., Any])


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    yaml = "yaml"
    csv = "csv"


class GlobalOptions:
    """The global options of one call. (Plain classes here, not dataclasses: this module loads
    on every call, `--help` included, and each dataclass costs about a millisecond to build.)"""

    __slots__ = ("profile", "local", "server", "org", "debug", "no_input", "output")

    def __init__(self) -> None:
        self.profile: str | None = None
        self.local = False
        self.server: str | None = None
        self.org: str | None = None
        self.debug = False
        self.no_input = False
        self.output: OutputFormat | None = None

    def merge(self, values: dict[str, Any]) -> None:
        """Take every value the user gave (not None / not False); a leaf's value wins."""
        for name in self.__slots__:
            value = values.get(name)
            if value is not None and value is not False:
                setattr(self, name, value)


# The shared options, declared once. Each becomes a keyword-only parameter of the root callback
# and of every leaf command (see `command`). Help texts name the environment variable, because
# Settings (not click) reads the environment: one parser, one error message per variable.
_PANEL = "Global options"
_OPTIONS: dict[str, tuple[Any, Any]] = {
    "profile": (
        Annotated[
            str | None,
            typer.Option(
                "--profile",
                metavar="NAME",
                help="Config profile to use [env: AGENT_SDK_PROFILE].",
                rich_help_panel=_PANEL,
            ),
        ],
        None,
    ),
    "local": (
        Annotated[
            bool,
            typer.Option(
                "--local",
                help="Use the local database, even if a server runs.",
                rich_help_panel=_PANEL,
            ),
        ],
        False,
    ),
    "server": (
        Annotated[
            str | None,
            typer.Option(
                "--server",
                metavar="URL",
                help="Use the server at URL [env: AGENT_SDK_SERVER_URL].",
                rich_help_panel=_PANEL,
            ),
        ],
        None,
    ),
    "org": (
        Annotated[
            str | None,
            typer.Option(
                "--org",
                metavar="ORG",
                help="Organisation to act in [env: AGENT_SDK_ORG].",
                rich_help_panel=_PANEL,
            ),
        ],
        None,
    ),
    "debug": (
        Annotated[
            bool,
            typer.Option(
                "--debug",
                help="Print tracebacks of errors [env: AGENT_SDK_DEBUG].",
                rich_help_panel=_PANEL,
            ),
        ],
        False,
    ),
    "no_input": (
        Annotated[
            bool,
            typer.Option("--no-input", help="Never prompt.", rich_help_panel=_PANEL),
        ],
        False,
    ),
}
_OUTPUT_OPTION: tuple[Any, Any] = (
    Annotated[
        OutputFormat | None,
        typer.Option(
            "--output",
            "-o",
            help="Output format (default: table on a terminal, json otherwise).",
            case_sensitive=False,
        ),
    ],
    None,
)
GLOBAL_NAMES = frozenset(_OPTIONS)


def _parameters(output: bool) -> list[inspect.Parameter]:
    items = list(_OPTIONS.items())
    if output:
        items.insert(0, ("output", _OUTPUT_OPTION))
    return [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=ann, default=default)
        for name, (ann, default) in items
    ]


def with_global_options(fn: F, *, output: bool = True) -> F:
    """Extend ``fn``'s signature with the global options (and ``-o`` when it prints data); the
    wrapper stores their values on the current CLIContext and calls ``fn`` without them."""
    sig = inspect.signature(fn, eval_str=True)
    extra = _parameters(output)
    names = {p.name for p in extra}

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        current().options.merge({n: kwargs.pop(n) for n in names if n in kwargs})
        return fn(*args, **kwargs)

    params = [*sig.parameters.values(), *extra]
    wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper  # type: ignore[return-value]


def format_options(cmd: _click.Command, ctx: _click.Context, fmt: _click.HelpFormatter) -> None:
    """Help sections: Arguments, Options, then the Global options every command shares."""
    sections: dict[str, list[tuple[str, str]]] = {"Arguments": [], "Options": [], _PANEL: []}
    for param in cmd.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None:
            continue
        if param.param_type_name == "argument":
            sections["Arguments"].append(record)
        elif param.name in GLOBAL_NAMES:
            sections[_PANEL].append(record)
        else:
            sections["Options"].append(record)
    for title, rows in sections.items():
        if rows:
            with fmt.section(title):
                fmt.write_dl(rows)


class GlobalCommand(TyperCommand):
    def format_options(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        format_options(self, ctx, formatter)


def sub_app(help: str | None = None, **kw: Any) -> typer.Typer:
    """A Typer app for a group or module of commands: plain help (no rich: faster, and the same
    text on every terminal, which the generated docs rely on)."""
    if help is not None:  # an explicit None would hide the callback's docstring
        kw["help"] = help
    return typer.Typer(
        rich_markup_mode=None,
        add_completion=False,
        pretty_exceptions_enable=False,
        **kw,
    )


def command(
    app: typer.Typer, name: str | None = None, *, output: bool = True, **kw: Any
) -> Callable[[F], F]:
    """``@command(app)``: register a leaf command that takes the global options."""

    def register(fn: F) -> F:
        app.command(name, cls=GlobalCommand, **kw)(with_global_options(fn, output=output))
        return fn

    return register


def root_callback(fn: F) -> F:
    """The root callback takes the global options (without ``-o``) too."""
    return with_global_options(fn, output=False)


# -- the context of one call ------------------------------------------------------------------


class CLIContext:
    def __init__(self) -> None:
        self.options = GlobalOptions()
        # Settings the command itself adds (`up --agents`, `db` forcing the local backend).
        self.extra_flags: dict[str, Any] = {}
        self._settings: Settings | None = None
        self._backend: Backend | None = None
        self._unredact: Callable[[], None] | None = None  # stops log redaction (see settings)

    @property
    def debug(self) -> bool:
        if self.options.debug:
            return True
        from agent_sdk.config import debug_in_env

        return debug_in_env()

    @property
    def output(self) -> OutputFormat:
        if self.options.output is not None:
            return self.options.output
        return OutputFormat.table if sys.stdout.isatty() else OutputFormat.json

    def flags(self) -> dict[str, Any]:
        o = self.options
        if o.local and o.server:
            raise InvalidInput("--local and --server exclude each other", hint="pick one")
        flags: dict[str, Any] = {"profile": o.profile, "org_id": o.org}
        if o.debug:
            flags["debug"] = True
        if o.local:
            flags["backend"] = "local"
        if o.server:
            flags["backend"] = "http"
            flags["server_url"] = o.server
        flags.update(self.extra_flags)
        return flags

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from agent_sdk.config import load_settings

            self._settings = load_settings(flags=self.flags())
            from agent_sdk.hosts import agents_from_cwd, redact_logs

            agents_from_cwd(self._settings)  # `--agents myapp.agents` finds ./myapp
            # Once per call, on stderr (never mixed into -o json on stdout): the process host
            # is where a start-up warning reaches the operator.
            for warning in self._settings.warnings:
                typer.echo(f"warning: {warning}", err=True)
            if self._settings.pii_redaction_enabled:  # every log line of this call, redacted
                self._unredact = redact_logs(self._settings)
        return self._settings

    def require_local(self) -> None:
        """For commands that only work on this machine's database (``db ...``)."""
        if self.options.server:
            raise InvalidInput(
                "this command works on the local database only; --server does not apply",
                hint="run it on the server's machine, without --server",
            )
        self.extra_flags["backend"] = "local"

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            self._backend = make_backend(self.settings)
        return self._backend

    def close(self) -> None:
        backend, self._backend = self._backend, None
        try:
            if backend is not None:
                backend.close()
        finally:
            unredact, self._unredact = self._unredact, None
            if unredact is not None:
                unredact()


_current: list[CLIContext] = []


def current() -> CLIContext:
    """The CLIContext of the running call (set up by the root group's ``main``)."""
    if not _current:
        _current.append(CLIContext())
    return _current[-1]


def push(ctx: CLIContext) -> None:
    _current.append(ctx)


def pop() -> None:
    if _current:
        _current.pop()


# -- options shared by the listing commands --------------------------------------------------------
PageSize = Annotated[
    int, typer.Option("--limit", "-n", min=1, max=1000, metavar="N", help="Page size.")
]
Cursor = Annotated[
    str | None,
    typer.Option("--cursor", metavar="CURSOR", help="Continue after a previous page."),
]


# -- picking a backend --------------------------------------------------------------------------


def server_target(settings: Settings) -> tuple[str | None, str | None]:
    """Where commands go: ``(server URL, URL of the running `up` server)``, with a URL of None
    for the local database. ``local`` -> the database; ``http`` -> ``server_url``; ``auto`` ->
    the server started by ``agent-sdk up`` on this machine if it still runs, else the database."""
    if settings.backend == "local":
        return None, None
    from agent_sdk.hosts.up import read_server_state

    state = read_server_state(settings.server_state_path)
    up_url = state["url"] if state is not None else None
    if settings.backend == "auto":
        return up_url, up_url
    return settings.server_url, up_url


def make_backend(settings: Settings) -> Backend:
    """The Backend of :func:`server_target`, with the credential of
    :func:`agent_sdk.cli.credentials.find` for a server."""
    url, up_url = server_target(settings)
    if url is None:
        return _local(settings)
    from agent_sdk.cli.credentials import find

    credential = find(settings, url, up_url)
    if credential is None:
        raise no_credential(settings, url)
    from agent_sdk.backend.http import HttpBackend

    backend: Backend = HttpBackend(settings.replace(server_url=url), api_key=credential.token)
    return backend


def no_credential(settings: Settings, url: str) -> AgentSDKError:
    """The error for a server the CLI has no key for. Which is the first problem to fix? A
    server that is down, not a missing key: with a key the user would only meet "cannot reach"
    next. (The probe runs only on this failing path, so it costs a working call nothing.)"""
    from agent_sdk.backend.http import HttpBackend

    probe = HttpBackend(settings.replace(server_url=url, api_key=None))
    try:
        up = probe.reachable()
    finally:
        probe.close()
    from agent_sdk.masking import mask_url

    shown = mask_url(url)
    if not up:
        return BackendUnavailable(
            f"cannot reach the agent-sdk server at {shown}",
            hint="start it with `agent-sdk up`, give --server URL of a running server, "
            "or use --local",
        )
    return AuthenticationError(
        f"no credential for the server at {shown}",
        hint=f"run `agent-sdk auth login --server {shown}`, or set AGENT_SDK_API_KEY to an "
        "API key of that server",
    )


def database_label(settings: Settings) -> str:
    """Where the data lives, for messages: the SQLite file, or the database URL with its
    password masked."""
    if settings.database_url.startswith("sqlite:"):
        return str(settings.sqlite_path)
    from agent_sdk.masking import mask_url

    return mask_url(settings.database_url)


def _local(settings: Settings) -> Backend:
    from agent_sdk.backend.local import LocalBackend

    return LocalBackend(settings)
