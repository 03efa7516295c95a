"""Tell other processes that a run has a new event, with Postgres LISTEN/NOTIFY.

A worker process appends a run's events while an SSE client follows the run through a server
process. Without a push, the server could only re-read the store on a timer. With this module:

* The writer (:meth:`PostgresStore.append_event`) calls ``pg_notify`` right after the
  transaction that inserted the event has committed, in a small transaction of its own, so no
  notification is sent for an event that rolled back. (A notifying commit holds a database-wide
  lock until it is on disk, which would make every event commit wait for the others'; the
  notification's own commit does not wait for the disk.) A writer that dies between the two
  leaves its readers to their periodic re-read. The payload is ``"<seq> <run id>"``: no event
  content, nothing about the org. A run id too long for the 8000-byte payload limit is left out
  (``"<seq> "``), which listeners read as "some run changed": every local reader re-checks.
* One :class:`NotifyListener` per process (per runtime) holds a dedicated connection that LISTENs,
  in a daemon thread blocked on that connection's socket, so an idle process does no work but a
  ``SELECT 1`` every PING_INTERVAL. It hands each notification to a sink (the event bus), whose
  readers then read the new events from the store with their own org, so a forged or
  misdirected notification can at worst cause a harmless extra read.
* If the connection drops, the sink is told at once (its readers fall back to the periodic store
  read) and the listener reconnects with exponential back-off. Once it LISTENs again the sink is
  told so, and every reader re-reads the store: what was committed during the outage is found
  there, so nothing is lost.

The channel name includes an md5 of the connection's ``current_schema()`` (the writer and the
listener evaluate the same SQL expression), so two deployments, or two test schemas, in one
database never hear each other. NOTIFY is already scoped to a database.
"""

from __future__ import annotations

import contextlib
import logging
import random
import selectors
import socket
import threading
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

# Evaluated by the server on both sides: a channel per schema, 49 characters (under the 63-byte
# identifier limit whatever the schema is called).
CHANNEL_SQL = "'agent_sdk_events_' || md5(current_schema())"
# A run id longer than this (never one made by agent-sdk, which are 30 characters) is not put in
# the payload, whose limit is 8000 bytes.
MAX_RUN_ID_BYTES = 1000
# With nothing heard for this long, the listener checks its connection with a query: the
# connection of a silent process is known to be alive (or not) at least this often.
PING_INTERVAL = 10.0
# Reconnection back-off: the first retry after BACKOFF_MIN seconds, doubling up to BACKOFF_MAX,
# each with jitter, so many processes losing one server do not return in lockstep.
BACKOFF_MIN = 0.1
BACKOFF_MAX = 5.0


class EventSink(Protocol):
    """Where a listener delivers what it hears (the runtime's event bus)."""

    def wake(self, run_id: str | None, seq: int) -> None:
        """Run ``run_id`` has an event ``seq`` (None: some run, unknown which). Any thread."""
        ...

    def listening(self, up: bool) -> None:
        """Whether notifications are being received; any thread. Called with True once LISTEN
        is in place (readers must re-read: notifications of the outage are lost), with False as
        soon as the connection is lost."""
        ...


def payload_run_id(run_id: str) -> str:
    """What the writer puts after the seq in a notification: the run id, or "" if too long."""
    return run_id if len(run_id.encode("utf-8", "replace")) <= MAX_RUN_ID_BYTES else ""


def parse_payload(payload: str) -> tuple[str | None, int] | None:
    """``(run_id or None, seq)`` of a payload written by :func:`payload_run_id`, or None for one
    that was not (anyone who can connect can NOTIFY any channel, so it is not trusted)."""
    seq_text, sep, run_id = payload.partition(" ")
    if not sep or not seq_text.isascii() or not seq_text.isdigit() or len(seq_text) > 18:
        return None
    return (run_id or None), int(seq_text)


class NotifyListener:
    """One LISTEN connection in a daemon thread, delivering to ``sink`` until :meth:`close`."""

    def __init__(
        self,
        conninfo: str,
        display_url: str,
        sink: EventSink,
        *,
        connect_timeout: float = 10.0,
        ping_interval: float = PING_INTERVAL,
    ) -> None:
        self._conninfo = conninfo
        self._display_url = display_url
        self._sink = sink
        self._connect_timeout = connect_timeout
        self._ping_interval = ping_interval
        self._stop = threading.Event()
        # Written to by close(), so the thread waiting on the connection wakes at once.
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._pid: int | None = None
        self._thread = threading.Thread(
            target=self._run, name="agent-sdk-events-listener", daemon=True
        )

    @property
    def backend_pid(self) -> int | None:
        """The server process of the LISTEN connection while there is one (for operators, who
        can find it in ``pg_stat_activity``)."""
        return self._pid

    def start(self) -> NotifyListener:
        self._thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Stop listening and wait (up to ``timeout``) for the thread to end."""
        self._stop.set()
        with contextlib.suppress(OSError):  # closed already if the thread has ended
            self._wake_w.send(b"x")
        if self._thread.ident is None:  # never started
            self._close_sockets()
        elif self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _close_sockets(self) -> None:
        self._wake_r.close()
        self._wake_w.close()

    # -- the thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._listen_until_closed()
        finally:  # here rather than in close(), which may give up waiting for a slow connect
            self._close_sockets()

    def _listen_until_closed(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                conn = self._connect()
            except Exception as exc:
                if failures == 0:
                    log.warning(
                        "cannot LISTEN on Postgres at %s (%s); live readers poll the store"
                        " until it is back",
                        self._display_url,
                        _oneline(exc),
                    )
                failures += 1
                self._stop.wait(_backoff(failures))
                continue
            if failures:
                log.info("listening on Postgres at %s again", self._display_url)
            failures = 0
            try:
                self._sink.listening(True)
                self._serve(conn)
            except Exception as exc:
                if not self._stop.is_set():
                    log.warning(
                        "lost the LISTEN connection to Postgres at %s (%s); live readers poll"
                        " the store while it reconnects",
                        self._display_url,
                        _oneline(exc),
                    )
                    failures = 1
            finally:
                self._pid = None
                self._sink.listening(False)
                with contextlib.suppress(Exception):
                    conn.close()
            if failures:
                self._stop.wait(_backoff(failures))

    def _connect(self) -> psycopg.Connection[Any]:
        import psycopg
        from psycopg import sql

        options: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": max(1, round(self._connect_timeout)),
            "application_name": "agent-sdk events listener",
            # A peer that vanished without closing the connection is noticed by TCP, not only
            # at the next ping.
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
        }
        if psycopg.pq.version() >= 120000:  # a ping left unanswered fails within 30 s
            options["tcp_user_timeout"] = 30_000
        conn = psycopg.connect(self._conninfo, **options)
        try:
            row = conn.execute(f"SELECT {CHANNEL_SQL}").fetchone()
            if row is None or row[0] is None:
                raise RuntimeError("the connection has no current schema")
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(row[0])))
        except BaseException:
            conn.close()
            raise
        self._pid = conn.info.backend_pid
        return conn

    def _serve(self, conn: psycopg.Connection[Any]) -> None:
        """Deliver notifications until close() or an error (which the caller reports)."""
        # A selector, not select.select(): a busy server's descriptors pass FD_SETSIZE (1024).
        with selectors.DefaultSelector() as selector:
            selector.register(conn.fileno(), selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stop.is_set():
                ready = selector.select(self._ping_interval)
                if self._stop.is_set():
                    return
                if not ready:
                    conn.execute("SELECT 1")  # what arrives meanwhile waits in a backlog
                for note in conn.notifies(timeout=0):
                    self._deliver(note.payload)

    def _deliver(self, payload: str) -> None:
        parsed = parse_payload(payload)
        if parsed is None:
            log.debug("ignored a notification not from agent-sdk: %.80r", payload)
            return
        try:
            self._sink.wake(*parsed)
        except Exception:  # a sink's bug must not stop delivery to everyone else
            log.exception("could not deliver a notification of run %r", parsed[0])


def _backoff(failures: int) -> float:
    delay: float = min(BACKOFF_MAX, BACKOFF_MIN * 2.0 ** min(failures - 1, 16))
    return delay * random.uniform(0.5, 1.0)


def _oneline(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


__all__ = [
    "CHANNEL_SQL",
    "EventSink",
    "NotifyListener",
    "parse_payload",
    "payload_run_id",
]
