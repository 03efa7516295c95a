"""Text a request may carry: what no store can hold is refused before any handler runs.

A JSON body may spell a lone surrogate (``"\\udfff"``) or a NUL (``"\\u0000"``); a path or a query
may percent-encode a NUL (``%00``); a header may hold a NUL byte. None of these can be stored as
text (PostgreSQL refuses NUL, and a lone surrogate has no UTF-8 at all), and one that slipped
into a JSON column broke every later listing of its org. So any such string, anywhere in a
request (body keys and values at any depth, path, query, headers), is answered 422
``invalid_input`` naming where it was, and nothing is stored.

The same check refuses a JSON body that is not UTF-8, or nested deeper than
:data:`MAX_JSON_DEPTH` arrays and objects (Python's parser gives up near 1,000 levels with a
RecursionError, which FastAPI answered 400): both are 422 ``invalid_input`` as well.

Pure ASGI middleware, inside the body limit. The body is parsed here only when it could hold
such a text (it has a ``\\u`` escape) or such a depth (more brackets than the limit): the usual
body is only decoded once more, and parsed once, by FastAPI.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent_sdk.errors import InvalidInput
from agent_sdk.server.errors import problem_response, render_http_error
from agent_sdk.text import printable, unstorable

# How deep arrays and objects may nest in a JSON body: the whole body is level 1, so
# {"metadata": {"k": [1]}} is 3 levels. Documented in docs/http-api.md.
MAX_JSON_DEPTH = 64
# A key named in an error is cut to this many characters: an answer never echoes a large input.
_LOC_CHARS = 64

Loc = list[str | int]


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is refused: where (``loc``), in words (``msg``), and its error type."""

    loc: Loc
    msg: str
    kind: str


class RequestText:
    """Refuse (422) a request holding text no store can hold, or a JSON body that is not UTF-8
    or too deep; pass every other request on unchanged, its body replayed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if refusal := check_head(scope):
            await _refuse(scope, receive, send, refusal)
            return
        if not _is_json(scope):
            await self.app(scope, receive, send)
            return
        try:
            body = await _read_body(receive)
        except HTTPException as exc:  # the body limit's 413, raised while reading
            response = await render_http_error(Request(scope), exc)
            response.headers["Connection"] = "close"
            await response(scope, receive, send)
            return
        if body is None:  # the client went away before sending it all
            return
        if refusal := check_body(body):
            await _refuse(scope, receive, send, refusal)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def check_head(scope: Scope) -> Refusal | None:
    """Why the path, the query or the headers of a request are refused (a NUL or a lone
    surrogate), or None."""
    if what := unstorable(scope.get("path", "")):
        return _unstorable(["path"], f"the path holds {what}")
    query = scope.get("query_string", b"")
    if query:
        # As Starlette reads it, so the check sees the values the handlers will see.
        for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if what := unstorable(key) or unstorable(value):
                return _unstorable(["query", _label(key)], f"the parameter holds {what}")
    for name, value in scope.get("headers", ()):
        if b"\x00" in name or b"\x00" in value:
            label = _label(name.decode("latin-1"))
            return _unstorable(["header", label], "the header holds a NUL byte")
    return None


def check_body(body: bytes) -> Refusal | None:
    """Why a JSON body is refused, or None: it must be UTF-8, nest at most
    :data:`MAX_JSON_DEPTH` levels, and none of its strings (keys included) may hold a NUL or a
    lone surrogate. A body that is not JSON at all is left to FastAPI, whose answer names the
    position of the syntax error."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = f"the body is not valid UTF-8 (byte {exc.start})"
        return Refusal(["body"], where, "utf8_invalid")
    # A NUL or a lone surrogate can only be spelt as a \u escape: raw, the first is not JSON
    # and the second is not UTF-8. And nesting needs at least as many brackets as levels.
    if "\\u" not in text and text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return None
    try:
        value = json.loads(text)
    except RecursionError:
        return Refusal(["body"], _too_deep(), "json_too_deep")
    except ValueError:
        return None  # not JSON: FastAPI answers 422 json_invalid
    return _walk(value)


def _walk(value: Any) -> Refusal | None:
    # Breadth first and without recursion: the shallowest problem is the one named.
    pending: deque[tuple[Any, Loc, int]] = deque([(value, ["body"], 1)])
    while pending:
        item, loc, depth = pending.popleft()
        if isinstance(item, str):
            if what := unstorable(item):
                return _unstorable(loc, f"the text holds {what}")
        elif isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                return Refusal(loc, _too_deep(), "json_too_deep")
            if isinstance(item, list):
                pending.extend((v, [*loc, i], depth + 1) for i, v in enumerate(item))
                continue
            for key, v in item.items():
                if what := unstorable(key):
                    return _unstorable([*loc, _label(key)], f"the key holds {what}")
                pending.append((v, [*loc, _label(key)], depth + 1))
    return None


def _unstorable(loc: Loc, what: str) -> Refusal:
    return Refusal(loc, what + ", which cannot be stored", "string_unstorable")


def _too_deep() -> str:
    return f"the JSON nests deeper than {MAX_JSON_DEPTH} levels of arrays and objects"


def _label(text: str) -> str:
    text = printable(text)
    return text if len(text) <= _LOC_CHARS else text[: _LOC_CHARS - 1] + "…"


def _is_json(scope: Scope) -> bool:
    """Whether FastAPI would parse the body as JSON: ``application/json`` or ``*+json``."""
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            kind: str = value.decode("latin-1").split(";", 1)[0].strip().lower()
            main, _, sub = kind.partition("/")
            return main == "application" and (sub == "json" or sub.endswith("+json"))
    return False


async def _read_body(receive: Receive) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _refuse(scope: Scope, receive: Receive, send: Send, refusal: Refusal) -> None:
    where = ".".join(str(p) for p in refusal.loc)
    rid = scope.get("state", {}).get("request_id")
    response = problem_response(
        rid if isinstance(rid, str) else "-",
        422,
        InvalidInput.code,
        InvalidInput.title,
        f"invalid request: {where}: {refusal.msg}",
        hint="send text as valid Unicode without NUL characters or unpaired surrogates "
        f"(\\ud800-\\udfff), and JSON nested at most {MAX_JSON_DEPTH} levels",
        extra={"errors": [{"loc": refusal.loc, "msg": refusal.msg, "type": refusal.kind}]},
    )
    await response(scope, receive, send)


__all__ = ["MAX_JSON_DEPTH", "Refusal", "RequestText", "check_body", "check_head"]
