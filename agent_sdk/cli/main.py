"""The ``agent-sdk`` command: the Typer app, and the one table from errors to exit codes.

Exit codes: 0 ok, 1 error, 2 usage, 3 declined/cancelled, 4 auth, 5 a watched run failed or was
cancelled, 130 interrupted. An error is one ``error:`` line (and a ``hint:`` line) on stderr, or
``{"error": {...}}`` with ``-o json``; a traceback only with ``--debug`` / ``AGENT_SDK_DEBUG=1``.

Start-up cost matters (CI calls the CLI in loops, completion on every key press): this module and
the command modules import only typer and the light parts of the package. Everything heavy is
imported inside the command that needs it.
"""

from __future__ import annotations

import sys
from collections.abc import MutableMapping, Sequence
from typing import Annotated, Any

import typer
from typer import _click
from typer.core import TyperGroup

from agent_sdk.cli import context
from agent_sdk.cli.context import (
    CLIContext,
    OutputFormat,
    command,
    current,
    root_callback,
    sub_app,
)
from agent_sdk.errors import (
    AgentSDKError,
    AuthenticationError,
    InvalidInput,
    PermissionDenied,
    RunNotSucceeded,
)

PROG_NAME = "agent-sdk"
COMPLETE_VAR = "_AGENT_SDK_COMPLETE"

# The commands of the root: name -> ("module:typer app" holding it, short help). The root reads its
# help from this table and imports a command's module only when that command runs, so
# `agent-sdk --help` and tab completion of the first word pay for none of them.
# tests/test_cli.py checks each short help against the command's own.
COMMANDS: dict[str, tuple[str, str]] = {
    "runs": ("agent_sdk.cli.runs:app", "Create, list, watch and cancel agent runs."),
    "sessions": ("agent_sdk.cli.sessions:app", "Sessions: the runs of one conversation or job."),
    "orgs": ("agent_sdk.cli.orgs:app", "Organisations (tenants): create, list, show."),
    "keys": ("agent_sdk.cli.keys:app", "API keys of the org: create, rotate, revoke."),
    "audit": ("agent_sdk.cli.audit:app", "The audit log: tail, export, verify."),
    "retention": ("agent_sdk.cli.retention:app", "Delete what retention policies expired."),
    "auth": ("agent_sdk.cli.auth:app", "Log in to a server, and show the credential in use."),
    "db": ("agent_sdk.cli.db:app", "Databases: migrations, and copying data between them."),
    "up": ("agent_sdk.cli.server_cmds:app", "Run the local server in the foreground until Ctrl-C."),
    "serve": ("agent_sdk.cli.server_cmds:app", "Run the server for a deployment."),
    "worker": ("agent_sdk.cli.worker_cmd:app", "Execute queued runs until Ctrl-C."),
    "status": ("agent_sdk.cli.status_cmd:app", "Show the store, queue depth and live workers."),
    "version": ("agent_sdk.cli.main:plain_commands", "Print the version of agent-sdk."),
    "completion": ("agent_sdk.cli.completion:app", "Print the shell completion script."),
}

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_DECLINED = 3
EXIT_AUTH = 4
EXIT_RUN_FAILED = 5
EXIT_INTERRUPTED = 130


def exit_code(exc: BaseException) -> int:
    """The one table from an error to an exit code."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, typer.Abort):
        return EXIT_DECLINED
    if isinstance(exc, _click.exceptions.UsageError | InvalidInput):
        return EXIT_USAGE
    if isinstance(exc, AuthenticationError | PermissionDenied):
        return EXIT_AUTH
    if isinstance(exc, RunNotSucceeded):
        return EXIT_RUN_FAILED
    if isinstance(exc, _click.exceptions.ClickException):
        return exc.exit_code
    return EXIT_ERROR


def _describe(exc: BaseException) -> dict[str, Any]:
    """What to tell the user: the error's own dict, or one made for errors not of our tree."""
    if isinstance(exc, AgentSDKError):
        return exc.to_dict()
    if isinstance(exc, _click.exceptions.UsageError):
        out: dict[str, Any] = {"code": "usage", "message": exc.format_message()}
        if exc.ctx is not None:
            out["hint"] = f"see '{exc.ctx.command_path} --help'"
        return out
    if isinstance(exc, typer.Abort):
        return {"code": "aborted", "message": "aborted"}
    if isinstance(exc, _click.exceptions.ClickException):
        return {"code": "error", "message": exc.format_message()}
    if isinstance(exc, KeyboardInterrupt):
        return {"code": "interrupted", "message": "interrupted"}
    if isinstance(exc, OSError) and exc.strerror:
        # Files and sockets the core did not translate: say which, without a traceback.
        where = f": {exc.filename}" if exc.filename else ""
        return {"code": "os_error", "message": f"{exc.strerror}{where}"}
    sqlite3 = sys.modules.get("sqlite3")
    if sqlite3 is not None and isinstance(exc, sqlite3.Error):
        return {"code": "database_error", "message": f"database error: {exc}"}
    return {
        "code": "internal",
        "message": f"internal error: {type(exc).__name__}: {exc}",
        "hint": "rerun with --debug to see the traceback",
    }


def _json_requested(ctx: CLIContext, argv: Sequence[str]) -> bool:
    if ctx.options.output is not None:
        return ctx.options.output in (OutputFormat.json, OutputFormat.jsonl)
    # The error may come before -o was parsed (a bad value of another option): look for it.
    for i, arg in enumerate(argv):
        value = None
        if arg in ("-o", "--output") and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--output="):
            value = arg.split("=", 1)[1]
        elif arg.startswith("-o") and len(arg) > 2 and not arg.startswith("--"):
            value = arg[2:]
        if value is not None:
            return value.lower() in ("json", "jsonl")
    return False


def report(exc: BaseException, ctx: CLIContext, argv: Sequence[str]) -> int:
    code = exit_code(exc)
    if isinstance(exc, _click.exceptions.NoArgsIsHelpError) and exc.ctx is not None:
        typer.echo(exc.ctx.get_help(), err=True)  # `agent-sdk runs` alone: show what it offers
        return code
    debug = ctx.debug or "--debug" in argv
    if debug and not isinstance(exc, KeyboardInterrupt):
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    info = _describe(exc)
    # Through the output layer, which prints any text: an error quoting an argument that is
    # not UTF-8 must not end in a UnicodeEncodeError of its own.
    from agent_sdk.cli.output import dumps, say

    if _json_requested(ctx, argv):
        say(dumps({"error": info}))
    elif not isinstance(exc, KeyboardInterrupt):
        say(f"error: {info['message']}")
        if info.get("hint"):
            say(f"hint: {info['hint']}")
    return code


class RootGroup(TyperGroup):
    """The root command. Its ``main`` is where every call ends, whether started by the console
    script or by a test's CliRunner, so the error table applies to both."""

    def format_options(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        context.format_options(self, ctx, formatter)
        self.format_commands(ctx, formatter)

    def _main_shell_completion(
        self,
        ctx_args: MutableMapping[str, Any],
        prog_name: str,
        complete_var: str | None = None,
    ) -> None:
        # Typer answers a completion request here, reading it from the environment itself (so
        # this module need not). Its answer needs typer's completion classes, the runtime side of
        # the scripts `agent-sdk completion` prints; registering them costs nothing on a call
        # that completes nothing, since typer has imported them already.
        from typer._completion_classes import completion_init

        completion_init()
        super()._main_shell_completion(ctx_args, prog_name, complete_var)

    def list_commands(self, ctx: _click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: _click.Context, cmd_name: str) -> _click.Command | None:
        cmd = self.commands.get(cmd_name)
        if cmd is None and cmd_name in COMMANDS:
            cmd = _load(cmd_name)
            self.commands[cmd_name] = cmd
        return cmd

    def format_commands(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, short) in COMMANDS.items()])

    def resolve_command(
        self, ctx: _click.Context, args: list[str]
    ) -> tuple[str | None, _click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except _click.exceptions.UsageError as exc:
            import difflib

            close = difflib.get_close_matches(args[0], list(COMMANDS)) if args else []
            if close and "Did you mean" not in exc.message:
                exc.message = exc.message.rstrip(".") + f". Did you mean {close[0]!r}?"
            raise

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        ctx = CLIContext()
        context.push(ctx)
        try:
            try:
                rv = super().main(
                    argv,
                    prog_name=prog_name or PROG_NAME,
                    complete_var=complete_var or COMPLETE_VAR,
                    standalone_mode=False,
                    **extra,
                )
                code = rv if isinstance(rv, int) else EXIT_OK
            except BaseException as exc:
                code = _ending(exc, ctx, argv)
            try:
                ctx.close()  # a local backend waits here for the runs it executes
            except BaseException as exc:
                code = code or _ending(exc, ctx, argv)  # the first error is the one to tell
        finally:
            context.pop()
        if standalone_mode:
            sys.exit(code)
        return code


def _ending(exc: BaseException, ctx: CLIContext, argv: Sequence[str]) -> int:
    if isinstance(exc, typer.Exit):
        return exc.exit_code
    if isinstance(exc, SystemExit):
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    return report(exc, ctx, argv)  # the error table: every error ends here, once


app = sub_app(
    name=PROG_NAME,
    cls=RootGroup,
    epilog="Exit codes: 0 ok, 1 error, 2 usage, 3 declined, 4 auth, 5 run failed, 130 interrupted.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from agent_sdk._version import __version__

        typer.echo(f"{PROG_NAME} {__version__}")
        raise typer.Exit()


@app.callback()
@root_callback
def _root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            is_eager=True,  # before anything else is parsed or checked, as every CLI does it
            callback=_print_version,
            help="Print the version of agent-sdk and exit (as `agent-sdk version`).",
        ),
    ] = False,
) -> None:
    """Run AI agents and administer their runs, locally or on a server.

    By default commands go to the server started by `agent-sdk up` on this machine if one runs,
    else to the local database. Example: agent-sdk runs create --agent demo --input hi --follow
    """


def _load(name: str) -> _click.Command:
    import importlib

    module, attr = COMMANDS[name][0].split(":")
    cmd = typer.main.get_command(getattr(importlib.import_module(module), attr))
    if isinstance(cmd, TyperGroup) and name in cmd.commands:
        cmd = cmd.commands[name]  # one of the plain commands a module holds
    cmd.name = name
    return cmd


# The plain command defined here; the others live in their own modules.
plain_commands = sub_app()


@command(plain_commands, "version")
def version() -> None:
    """Print the version of agent-sdk."""
    from agent_sdk._version import __version__

    if current().output is OutputFormat.table:
        typer.echo(f"{PROG_NAME} {__version__}")
    else:
        from agent_sdk.cli.output import render_one

        render_one({"version": __version__}, [], current().output)


def main() -> None:
    """The console script ``agent-sdk``."""
    typer.main.get_command(app).main(prog_name=PROG_NAME)
