"""Redacted logs: with PII redaction on, no log line of the process carries an e-mail address, a
card number or a bearer token, whichever library wrote it.

:class:`RedactingFilter` is a ``logging.Filter`` that rewrites a record in place: the message
is formatted with its arguments and redacted (so ``log.info("user %s", email)`` is covered),
and so is the text of an attached exception and stack. It uses the built-in detectors only:
a log record belongs to no org, so org patterns do not apply.

:func:`install` runs that filter on every record the process creates, through the log record
factory rather than on handlers: handlers come and go (uvicorn configures its own, pytest adds
one per test), but every record, of every logger, is made by the factory. The CLI, the server
and the worker install it when ``AGENT_SDK_PII_REDACTION_ENABLED`` is on. Attribute values
passed with ``extra=`` are not rewritten; neither is the exception object itself for handlers
that read ``exc_info`` rather than the formatted text.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from agent_sdk.governance.redact import Redactor
from agent_sdk.governance.redact_policy import default_redactor


class RedactingFilter(logging.Filter):
    """Redact each record's message, arguments, exception and stack text; never drops one.
    Also usable on its own, e.g. in a ``dictConfig``: ``{"()": "agent_sdk.governance.
    redact_logs.RedactingFilter"}``."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.redactor = redactor or default_redactor()

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record, self.redactor)
        return True


def redact_record(record: logging.LogRecord, redactor: Redactor) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: the handler will report it, from the raw parts
        message = f"{record.msg} {record.args}"
    clean = redactor.redact(message)
    if clean is not message or record.args:
        record.msg, record.args = clean, None
    if record.exc_info and not record.exc_text:
        record.exc_text = redactor.redact(_formatter.formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = redactor.redact(record.stack_info)


_formatter = logging.Formatter()
_lock = threading.Lock()
_users = 0
_filter: RedactingFilter | None = None
_ours: Callable[..., logging.LogRecord] | None = None
_previous: Callable[..., logging.LogRecord] | None = None


def install() -> Callable[[], None]:
    """Redact every log record this process creates from now on; returns the function that
    undoes it. Calls nest: the records stay redacted until every caller has undone its own."""
    global _users, _filter, _ours, _previous
    with _lock:
        _users += 1
        if _ours is None or logging.getLogRecordFactory() is not _ours:
            previous = logging.getLogRecordFactory()
            redacting = _filter = _filter or RedactingFilter()

            def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
                record = previous(*args, **kwargs)
                if _users > 0:
                    redacting.filter(record)
                return record

            _ours, _previous = factory, previous
            logging.setLogRecordFactory(factory)
    done = [False]

    def uninstall() -> None:
        global _users, _ours, _previous
        with _lock:
            if done[0]:
                return
            done[0] = True
            _users -= 1
            # Put the old factory back only if nobody wrapped ours meanwhile; otherwise ours
            # stays in the chain, inert while nobody uses it.
            if _users == 0 and logging.getLogRecordFactory() is _ours and _previous is not None:
                logging.setLogRecordFactory(_previous)
                _ours = _previous = None

    return uninstall


def installed() -> bool:
    """Whether records are being redacted now."""
    return _users > 0


__all__ = ["RedactingFilter", "install", "installed", "redact_record"]
