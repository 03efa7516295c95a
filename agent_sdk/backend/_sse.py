"""Reading Server-Sent Events: the line splitting and field parsing of the WHATWG rules, small
enough to own (httpx's ``iter_lines`` also splits at U+2028 and other characters that an event
stream treats as ordinary text)."""

from __future__ import annotations

import json
from collections.abc import Iterator

from agent_sdk.records import Event


def parse_sse(chunks: Iterator[str]) -> Iterator[Event]:
    """Events of a ``text/event-stream``. Lines end at CRLF, LF or CR (and nowhere else: not
    the other line breaks str.splitlines knows); comments (keepalives) are skipped."""
    data: list[str] = []
    for line in sse_lines(chunks):
        if not line:
            if data:
                yield Event.from_dict(json.loads("\n".join(data)))
                data = []
        elif line.startswith("data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(" ") else value)
        # "id:" and "event:" repeat what the data holds (seq, type); ":" lines are comments.


def sse_lines(chunks: Iterator[str]) -> Iterator[str]:
    buffer = ""
    for chunk in chunks:
        buffer += chunk
        start = 0
        while True:
            cr, lf = buffer.find("\r", start), buffer.find("\n", start)
            if cr == -1 and lf == -1:
                break
            if cr != -1 and (lf == -1 or cr < lf):
                if cr + 1 == len(buffer):
                    break  # a CR at the end of a chunk may be the first half of CRLF
                end, nxt = cr, cr + 2 if buffer[cr + 1] == "\n" else cr + 1
            else:
                end, nxt = lf, lf + 1
            yield buffer[start:end]
            start = nxt
        buffer = buffer[start:]
    if buffer:
        yield buffer
