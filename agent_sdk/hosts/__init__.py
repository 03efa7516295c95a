"""The process hosts: the composition roots of agent-sdk.

Each process that ``agent-sdk`` starts and keeps running is wired in one module here, and only
these modules may import every layer (tests/test_layers.py holds the list):

========== ====================== ===========================================================
host       module                 what it wires
========== ====================== ===========================================================
up         :mod:`.up`             this machine's server: migrate, bootstrap key, state file
serve      :mod:`.serve`          a deployment's server: the app on a socket, uvicorn
worker     :mod:`.worker`         N worker processes: runtime, queue, supervision
scheduler  ``.scheduler``         reserved for the scheduler process
db copy    :mod:`.db_copy`        one database copied into another, verified
========== ====================== ===========================================================

The CLI parses the flags, asks the questions and renders; it hands the rest to a host. What every
process does before it starts (finding the user's agents, checking they import) lives here, in
this module.

``agents_from_cwd``: ``agent-sdk up --agents myapp.agents`` is run from the project that holds
``myapp/``. The ``agent-sdk`` console script puts its own bin directory first on ``sys.path``, not
the current directory, so without help the import fails unless the user sets ``PYTHONPATH=.``. We
do what ``python -m`` does: the current directory goes first on ``sys.path``. Worker processes are
started with ``spawn``, which hands the parent's ``sys.path`` to each child, so they find the same
modules.

``check_agents``: a server imports its agents in its lifespan, after it has bound its port and
told the user it runs; a bad module would then show up as a traceback logged by uvicorn.
Importing them here first turns it into one error line before anything starts (the modules stay
in ``sys.modules``, so the server's own import is free).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent_sdk.config import Settings


def agents_from_cwd(settings: Settings) -> None:
    """Put the current directory first on ``sys.path`` when agents are configured (modules, or
    an agents file whose tools are ``module:function`` paths)."""
    if not settings.engine.agents and not settings.engine.agents_file:
        return
    try:
        cwd = os.getcwd()
    except OSError:
        return  # the directory was removed under us: there is nothing there to import
    if sys.path[:1] != [cwd]:
        sys.path.insert(0, cwd)


def check_agents(settings: Settings) -> None:
    """Import the configured agents now. Raises ConfigError for a bad spec or a module that is
    not there (exit 2), AgentImportError for a module that raised while importing (exit 1)."""
    if not settings.engine.agents and not settings.engine.agents_file:
        return  # only the built-in demo: nothing of the user's to check
    agents_from_cwd(settings)
    from agent_sdk.engine.agent import AgentRegistry

    AgentRegistry(settings.engine.agents, settings.engine.agents_file).load()


def redact_logs(settings: Settings) -> Callable[[], None]:
    """Redact every log record of this process from now on when PII redaction is on; returns the
    function that stops it."""
    from agent_sdk.core.redaction import redact_process_logs

    return redact_process_logs(settings)
