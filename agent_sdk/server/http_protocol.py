"""Request heads capped in the HTTP protocol, while they arrive.

An ASGI middleware sees a request only once the server has parsed its whole head: by then a
50 MB header is in memory, and httptools has spent seconds on it (it appends every piece of a
header to the bytes received so far, so a header dribbled in small pieces costs quadratic time).
The caps therefore live in uvicorn's protocol class. :class:`HeadLimitedProtocol` counts the
bytes of each request head (request line included) as they are handed to the parser, and answers
``431 Request Header Fields Too Large`` as soon as a head passes ``max_head_bytes``, or when a
complete head has more than ``max_header_count`` fields; the app never sees such a request.

After the 431 the connection is closed in stages: the answer is written, the write side is shut,
and what the client still sends is read and dropped for up to :data:`LINGER_SECONDS`. Closing at
once, with unread bytes in the socket, would make the kernel send a reset that can destroy the
answer before the client reads it (RFC 9112, section 9.6).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from agent_sdk.server.errors import TYPE_PREFIX
from agent_sdk.server.http_limits import CODE, HINT, TITLE, too_many_bytes, too_many_fields

LINGER_SECONDS = 2.0
log = logging.getLogger("agent_sdk.server")


class HeadLimitedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with capped request heads. Use :func:`head_limited` to get
    a subclass with the caps of a deployment (uvicorn instantiates the class it is given)."""

    max_head_bytes: ClassVar[int] = 65_536
    max_header_count: ClassVar[int] = 100

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # True while the next byte fed to the parser belongs to a request head: on a new
        # connection, and from the end of one request until the head of the next is complete.
        self._in_head = True
        self._head_bytes = 0
        self._refusal: str | None = None  # why the current request is refused, once it is
        self._lingering = False

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # the 431 is out; drop the rest (see the module docstring)
        while data:
            if self._in_head:
                room = self.max_head_bytes - self._head_bytes
                if room <= 0:  # the head is incomplete and already at the cap
                    self._refuse(too_many_bytes(self.max_head_bytes))
                    return
                # Feed no more than the cap allows, so the parser never holds a bigger head.
                piece, data = data[:room], data[room:]
                self._head_bytes += len(piece)
            else:
                # A body: uvicorn bounds it with flow control, the app with its own limit. If the
                # piece also starts the next (pipelined) request, that head's first bytes go
                # uncounted: an overshoot of at most one read, never a growing buffer.
                piece, data = data, b""
            super().data_received(piece)
            if self._refusal is not None:
                self._refuse(self._refusal)
                return
            if self.transport.is_closing():
                return  # uvicorn answered 400 to a malformed request, or the client left

    # -- parser callbacks ------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        if not self._in_head:  # a pipelined request that began inside a body's read
            self._in_head, self._head_bytes = True, 0
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        if self._refusal is not None:
            return
        self._in_head = False
        if len(self.headers) > self.max_header_count:
            # Not started: the parser goes on through this read, and the callbacks below stay
            # silent until data_received answers.
            self._refusal = too_many_fields(self.max_header_count)
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._refusal is None:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refusal is not None:
            return
        self._in_head, self._head_bytes = True, 0
        super().on_message_complete()

    # -- the answer ------------------------------------------------------------------------------
    def _refuse(self, detail: str) -> None:
        self._lingering = True
        log.info("431 to %s: %s", _peer(self.client), detail)
        if self.cycle is not None and not self.cycle.response_complete:
            # An answer to an earlier request of this connection is still being written; a 431
            # now would land inside it. The connection ends with that answer instead.
            self.cycle.keep_alive = False
            return
        body = json.dumps(
            {
                "type": TYPE_PREFIX + CODE,
                "title": TITLE,
                "status": 431,
                "detail": detail,
                "code": CODE,
                "hint": HINT,
                "request_id": "-",  # no request was made of it
            },
            separators=(",", ":"),
        ).encode()
        head = [STATUS_LINE[431]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/problem+json\r\n",
            b"content-length: ", str(len(body)).encode(), b"\r\n",
            b"connection: close\r\n\r\n",
        ]  # fmt: skip
        self.transport.write(b"".join(head) + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the client's EOF then closes it (eof_received)
            self.loop.call_later(LINGER_SECONDS, self.transport.close)
        else:
            self.transport.close()


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "an unknown peer"


def head_limited(max_head_bytes: int, max_header_count: int) -> type[asyncio.Protocol]:
    """The protocol class uvicorn is given (``uvicorn.Config(http=...)``), with these caps."""
    return type(
        "HeadLimitedProtocol",
        (HeadLimitedProtocol,),
        {"max_head_bytes": max_head_bytes, "max_header_count": max_header_count},
    )


__all__ = ["LINGER_SECONDS", "HeadLimitedProtocol", "head_limited"]
