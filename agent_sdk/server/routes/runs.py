"""/v1/runs: create, list, show, cancel, and read events (a JSON page, a live SSE stream, a replay).

Handlers are thin: parse, call one RunService method, render. They call the synchronous store
from ``async def`` on purpose: a SQLite call takes microseconds, far less than the thread hop
FastAPI would add to run a plain ``def`` handler in its pool, and it keeps the event loop the
single place where runs, streams and requests interleave. Run creation hands its write to the
admission lane (agent_sdk.server.admission), which commits the creations waiting together in
one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from typing import TYPE_CHECKING, Annotated, Any, cast, get_type_hints

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, create_model
from starlette.convertors import Convertor, register_url_convertor
from starlette.responses import Response

from agent_sdk.core.runs import RunService
from agent_sdk.errors import InvalidInput, Overloaded
from agent_sdk.records import Event, Run
from agent_sdk.server.admission import AdmissionLane
from agent_sdk.server.deps import RunsReader, RunsWriter, RuntimeDep
from agent_sdk.server.errors import problem_responses
from agent_sdk.server.params import MAX_INT64, STATUS_LIST_PATTERN, After, Cursor
from agent_sdk.server.responses import JSONResponse, ascii_json

# A store page of events becomes one chunk of the stream: one read, one encode, one send.
SSE_PAGE = 500
KEEPALIVE_SECONDS = 15.0
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

# No pattern on ids: any id that is not a run of this org is a 404, as in the local backend
# (a 422 for some unknown ids and a 404 for others would make the two backends differ).
RunId = Annotated[str, Path(description="a run id (run_...)")]
LastEventId = Annotated[
    str | None,
    Header(alias="Last-Event-ID", description="SSE resume point; wins over `after`"),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Makes a retry safe (draft-ietf-httpapi-idempotency-key-header): 1-255 "
        "printable ASCII characters, bare or as a quoted string, unique per request and reused "
        "for its retries. The same key with the same body within AGENT_SDK_IDEMPOTENCY_TTL "
        "answers the first response again, with `Idempotent-Replayed: true`, and creates "
        "nothing; with another body, 422; while the first is in flight, 409. Keys are per org.",
        examples=["8e03978e-40d5-43e8-bc93-6894a57f9324"],
    ),
]


# -- request and response models -----------------------------------------------------------------
# What Agent.from_spec accepts (it checks; this documents): `name` is required, nothing else is.
AGENT_SPEC_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "AgentSpec",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "model": {"type": "string", "description": "provider:model, or scripted"},
        "instructions": {"type": "string"},
        "tools": {"type": "array", "items": {"type": "string"}},
        "script": {"type": "array", "items": {"type": "object"}},
        "latency": {"type": "number", "minimum": 0, "maximum": 3600},  # scripted.MAX_LATENCY
        "max_steps": {"type": "integer", "minimum": 1, "maximum": MAX_INT64},
        "max_tokens": {"type": "integer", "minimum": 1, "maximum": MAX_INT64},
        "output_type": {"type": "string"},
    },
}
_RETRYABLE: list[Any] = ["failed", "dead", "cancelled"]
_AGE = "^[1-9][0-9]{0,5}[smhd]$"


class CreateRun(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"agent": "demo", "input": "summarise README.md"}]},
    )

    agent: str | dict[str, Any] = Field(
        description="an agent name, or an inline agent spec such as "
        '{"name": "slow", "model": "scripted", "latency": 5, "script": [{"text": "done"}]}',
        json_schema_extra={"anyOf": [{"type": "string", "minLength": 1}, AGENT_SPEC_SCHEMA]},
    )
    input: str = Field(description="the user input of the run")
    session_id: str | None = Field(default=None, description="group runs into a session")
    metadata: dict[str, Any] | None = None
    script: list[dict[str, Any]] | None = Field(
        default=None, description="turns for the scripted model (offline tests)"
    )


class RetryRuns(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"status": ["failed", "dead"], "since": "1h"}]},
    )

    status: list[str] = Field(
        min_length=1,
        description="statuses of the runs to retry: failed, dead, cancelled",
        json_schema_extra={"items": {"type": "string", "enum": _RETRYABLE}},
    )
    since: str | None = Field(
        default=None,
        description="only runs created since: an age (30m, 1h, 2d) or an ISO-8601 time",
        json_schema_extra={
            "anyOf": [
                {"type": "string", "pattern": _AGE},
                {"type": "string", "format": "date-time"},
                {"type": "null"},
            ]
        },
    )
    limit: int = Field(default=1000, ge=1, le=1000, description="retry at most this many")


def _model_of(record: type, name: str, doc: str) -> type[BaseModel]:
    """A pydantic model with the fields of the dataclass ``record``, in its order and with its
    defaults: the API's schema follows the record, so a field added to it is documented and
    served without a second copy here."""
    hints = get_type_hints(record)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(record):
        if f.default is not dataclasses.MISSING:
            fields[f.name] = (hints[f.name], f.default)
        elif f.default_factory is not dataclasses.MISSING:
            fields[f.name] = (hints[f.name], f.default_factory())
        else:
            fields[f.name] = (hints[f.name], ...)
    return create_model(name, __doc__=doc, __module__=__name__, **fields)


if TYPE_CHECKING:
    RunModel = BaseModel
else:
    RunModel = _model_of(Run, "RunModel", "A run (agent_sdk.records.Run).")


class EventModel(BaseModel):
    """A run event (agent_sdk.records.Event); ``seq`` strictly increases per run from 1."""

    run_id: str
    seq: int
    type: str = Field(examples=["run.created", "model.delta", "run.succeeded"])
    time: str
    data: dict[str, Any] = {}


class RunList(BaseModel):
    data: list[RunModel]


class RunPage(BaseModel):
    data: list[RunModel]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null at end")


class EventPage(BaseModel):
    data: list[EventModel]
    next_after: int | None = Field(description="pass as `after` for the next page; null at end")


# One Server-Sent Event, as OpenAPI 3.1 tools read the `schema` of text/event-stream (3.2 names it
# `itemSchema`): the fields of a frame, its `data` the JSON of an EventModel.
SSE_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "event", "data"],
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9]+$", "description": "the event's seq"},
        "event": {"type": "string", "description": "the event's type", "examples": ["run.created"]},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {"$ref": "#/components/schemas/EventModel"},
        },
    },
}
_SSE_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "text/event-stream": {
                "schema": {
                    **SSE_EVENT_SCHEMA,
                    "description": "one event of the stream, such as "
                    '`id: 1` `event: run.created` `data: {"run_id":"run_...","seq":1,...}`; '
                    "comment lines (`: keepalive`) fill quiet intervals",
                },
            }
        },
    }
}
_FOLLOW_DOC: dict[int | str, dict[str, Any]] = {
    **_SSE_DOC,
    204: {
        "description": "Streaming only: the run has ended and its terminal event is at or "
        "before the resume point (`Last-Event-ID` or `after`), so nothing will follow. "
        "EventSource stops reconnecting on a 204."
    },
}


# -- handlers ------------------------------------------------------------------------------------
async def create_run(
    request: Request,
    body: CreateRun,
    who: RunsWriter,
    rt: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    # Checked and built here (reads only); written with whatever other creations are waiting
    # (see agent_sdk.server.admission).
    admission = rt.runs.prepare(
        who.org_id,
        body.agent,
        body.input,
        session_id=body.session_id,
        metadata=body.metadata,
        script=body.script,
        actor=who.actor,
        idempotency_key=_idempotency_key(idempotency_key),
    )
    run, replayed = admission.run, admission.replayed
    if not replayed:
        lane: AdmissionLane = request.app.state.admissions
        try:
            run, replayed = await lane.admit(admission)
        except Overloaded:
            request.state.extra_headers = {
                **getattr(request.state, "extra_headers", {}),
                "Retry-After": "1",
            }
            raise
    headers = {"Location": f"/v1/runs/{run.id}"}
    if replayed:  # the stored first answer: same status, same body
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(run.to_dict(), 201, headers=headers)


def _idempotency_key(raw: str | None) -> str | None:
    """The key of the header. The draft makes it a structured-field string (``"abc"``); most
    clients send it bare (``abc``), so both are accepted and mean the same key."""
    if raw is None:
        return None
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = _SF_ESCAPE.sub(r"\1", value[1:-1])
    return value


_SF_ESCAPE = re.compile(r'\\(["\\])')


async def list_runs(
    who: RunsReader,
    rt: RuntimeDep,
    status: Annotated[
        list[str] | None,
        Query(
            description="comma-separated statuses, e.g. queued,running (repeatable)",
            json_schema_extra={
                "anyOf": [
                    {"type": "array", "items": {"type": "string", "pattern": STATUS_LIST_PATTERN}},
                    {"type": "null"},
                ]
            },
        ),
    ] = None,
    session_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Cursor = None,
) -> Response:
    page = rt.runs.list(
        who.org_id, status=status, session_id=session_id, limit=limit, cursor=cursor
    )
    return JSONResponse(
        {"data": [r.to_dict() for r in page.items], "next_cursor": page.next_cursor}
    )


async def get_run(run_id: RunId, who: RunsReader, rt: RuntimeDep) -> Response:
    return JSONResponse(rt.runs.get(who.org_id, run_id).to_dict())


async def cancel_run(run_id: RunId, who: RunsWriter, rt: RuntimeDep) -> Response:
    return JSONResponse(rt.runs.cancel(who.org_id, run_id, actor=who.actor).to_dict(), 202)


async def retry_run(run_id: RunId, who: RunsWriter, rt: RuntimeDep) -> Response:
    return JSONResponse(rt.runs.retry(who.org_id, run_id, actor=who.actor).to_dict(), 202)


async def retry_runs(body: RetryRuns, who: RunsWriter, rt: RuntimeDep) -> Response:
    runs = rt.runs.retry_many(
        who.org_id, status=body.status, since=body.since, actor=who.actor, limit=body.limit
    )
    return JSONResponse({"data": [r.to_dict() for r in runs]}, 202)


async def run_events(
    request: Request,
    run_id: RunId,
    who: RunsReader,
    rt: RuntimeDep,
    after: After = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="page size (JSON only)")] = 1000,
    stream: Annotated[bool, Query(description="SSE, as with Accept: text/event-stream")] = False,
    last_event_id: LastEventId = None,
) -> Response:
    if stream or "text/event-stream" in request.headers.get("accept", ""):
        after = _resume_point(last_event_id, after)
        # The first page is read here, before the answer starts, so an unknown run is a 404
        # problem rather than a stream that breaks off.
        first = rt.runs.events(who.org_id, run_id, after=after, limit=SSE_PAGE)
        if not first and rt.runs.ended_by(who.org_id, run_id, after):
            # Resumed at or past the terminal event (what an EventSource does once the stream
            # has ended): nothing will follow. 204 is what tells EventSource to stop
            # reconnecting; an empty stream would be reopened every few seconds.
            return Response(status_code=204)
        chunks = _follow_chunks(rt.runs, who.org_id, run_id, first, after)
        return _sse(chunks)
    events = rt.runs.events(who.org_id, run_id, after=after, limit=limit)
    return JSONResponse(
        {
            "data": [_event_dict(e) for e in events],
            "next_after": events[-1].seq if len(events) == limit else None,
        }
    )


async def replay_events(
    run_id: RunId,
    who: RunsReader,
    rt: RuntimeDep,
    after: After = 0,
    speed: Annotated[
        float,
        Query(ge=0, le=10_000, description="0: as fast as possible; 1: original pace; 2: double"),
    ] = 0.0,
    last_event_id: LastEventId = None,
) -> Response:
    after = _resume_point(last_event_id, after)
    events = rt.runs.replay(who.org_id, run_id, after=after, speed=speed)
    # Take the first event now: the run's NotFound surfaces as a 404 before the stream starts.
    try:
        first = await anext(events)
    except StopAsyncIteration:
        first = None
    return _sse(_replay_chunks(first, events, batch=1 if speed > 0 else SSE_PAGE))


# -- Server-Sent Events --------------------------------------------------------------------------
# The hot path of a stream. Frames are built by hand around one JSON encoder object (json.dumps
# builds a new encoder per call when given options), and the run id and type, which repeat in
# every frame of a chunk, are quoted once per chunk. The JSON of a frame is exactly that of
# Event.to_dict() (a test holds it to that); building it this way is ~3x faster.
_encode = json.JSONEncoder(separators=(",", ":")).encode


def _event_dict(e: Event) -> dict[str, Any]:
    # Event.to_dict() without the deep copy of dataclasses.asdict: it is only serialised.
    return {"run_id": e.run_id, "seq": e.seq, "type": e.type, "time": e.time, "data": e.data}


def encode_sse(events: Iterable[Event]) -> bytes:
    """Events as SSE frames: ``id: <seq>``, ``event: <type>``, ``data: <compact JSON>``. The
    JSON is ASCII-only (the encoder escapes the rest), so no frame holds a byte that a client
    could take for a line break; a lone surrogate in stored data is sent as U+FFFD."""
    run_ids: dict[str, str] = {}
    types: dict[str, tuple[str, str]] = {}  # type -> (SSE event name, JSON string)
    parts = []
    for e in events:
        run_id = run_ids.get(e.run_id)
        if run_id is None:
            run_id = run_ids[e.run_id] = _encode(e.run_id)
        kind = types.get(e.type)
        if kind is None:
            # A type with a line break would end the frame early; such a name is no SSE name.
            name = "message" if "\n" in e.type or "\r" in e.type else str(e.type)
            kind = types[e.type] = (name, _encode(e.type))
        parts.append(
            f"id: {e.seq}\nevent: {kind[0]}\ndata: "
            f'{{"run_id":{run_id},"seq":{e.seq},"type":{kind[1]},"time":{_encode(e.time)},'
            f'"data":{ascii_json(e.data)}}}\n\n'
        )
    return "".join(parts).encode()


def _resume_point(last_event_id: str | None, after: int) -> int:
    if last_event_id is None or not last_event_id.strip():
        return after
    text = last_event_id.strip()
    # Digits only: int() would also take "+5", "1_0" and non-ASCII digits.
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or int(text) > MAX_INT64:
        raise InvalidInput(
            "Last-Event-ID must be the id (seq) of an event received before",
            hint="send the `id:` of the last event you received, or leave the header out",
        )
    return int(text)


async def _follow_chunks(
    runs: RunService, org: str, run_id: str, page: list[Event], after: int
) -> AsyncGenerator[bytes, None]:
    # Catch up from the store a whole page per chunk: a finished run streams at the speed of
    # reading and encoding pages, with no per-event await.
    while True:
        if page and runs.ends_stream(org, run_id, page[-1]):
            yield encode_sse(page)
            return
        if page:
            yield encode_sse(page)
            after = page[-1].seq
        if len(page) < SSE_PAGE:
            break
        page = runs.events(org, run_id, after=after, limit=SSE_PAGE)
    # Then live, from the run service (bus + store), to the terminal event.
    live = runs.stream(org, run_id, after=after)
    async with contextlib.aclosing(live):
        async for event in live:  # it ends after the run's last terminal event
            yield encode_sse((event,))


async def _replay_chunks(
    first: Event | None, events: AsyncIterator[Event], *, batch: int
) -> AsyncGenerator[bytes, None]:
    if first is None:
        return
    buffer = [first]
    async with contextlib.aclosing(cast(AsyncGenerator[Event, None], events)):
        async for event in events:
            if len(buffer) >= batch:
                yield encode_sse(buffer)
                buffer = []
            buffer.append(event)
    yield encode_sse(buffer)


async def with_keepalive(
    chunks: AsyncGenerator[bytes, None], interval: float = KEEPALIVE_SECONDS
) -> AsyncIterator[bytes]:
    """Pass ``chunks`` through, adding an SSE comment after every ``interval`` of silence so
    proxies keep the connection and clients can tell a quiet run from a dead connection.

    The next chunk is awaited in a task: waiting on it with a timeout directly would cancel (and
    so end) the source generator at the first quiet interval.
    """

    async def next_chunk() -> bytes | None:
        try:
            return await anext(chunks)
        except StopAsyncIteration:
            return None

    pending: asyncio.Task[bytes | None] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.create_task(next_chunk())
            done, _ = await asyncio.wait((pending,), timeout=interval)
            if not done:
                yield b": keepalive\n\n"
                continue
            chunk, pending = pending.result(), None
            if chunk is None:
                return
            yield chunk
    finally:
        if pending is not None:
            # Closed mid-wait (the client went away): cancelling the task throws into the
            # source at its await, which runs its cleanup (the bus subscription is dropped).
            pending.cancel()
            pending.add_done_callback(_retrieve)
        else:
            await chunks.aclose()


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # mark it retrieved: nobody is left to read it


def _sse(chunks: AsyncGenerator[bytes, None]) -> StreamingResponse:
    return StreamingResponse(
        with_keepalive(chunks), media_type="text/event-stream", headers=SSE_HEADERS
    )


# -- routing -------------------------------------------------------------------------------------
class _RunIdSegment(Convertor[str]):
    """A run id in a path, but never the bare word ``retry``: ``/runs/retry`` is the bulk retry,
    so ``GET /runs/retry`` is a 405 naming POST rather than "run 'retry' not found", and
    ``OPTIONS`` there does not advertise the GET of ``/runs/{run_id}``."""

    regex = "(?!retry$)[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("run_id", _RunIdSegment())


def router(route_class: type[APIRoute] = APIRoute) -> APIRouter:
    """The run routes, relative to their mount point (``/v1``, or ``/`` for the old paths)."""
    r = APIRouter(
        tags=["runs"],
        route_class=route_class,
        responses=problem_responses(401, 400, 403, 404, 422, 429),
    )
    r.post(
        "/runs",
        status_code=201,
        response_model=RunModel,
        summary="Start a run",
        responses={
            201: {
                "headers": {
                    "Location": {"schema": {"type": "string"}},
                    "Idempotent-Replayed": {
                        "description": "`true` when this is the stored answer to an earlier "
                        "request with the same Idempotency-Key (no run was created)",
                        "schema": {"type": "string", "enum": ["true"]},
                    },
                }
            },
            409: {
                **problem_responses(409)[409],
                "description": "A request with this Idempotency-Key is still in flight",
            },
        },
    )(create_run)
    r.get("/runs", response_model=RunPage, summary="List runs, newest first")(list_runs)
    r.get("/runs/{run_id:run_id}", response_model=RunModel, summary="Show a run")(get_run)
    r.post(
        "/runs/{run_id}/cancel",
        status_code=202,
        response_model=RunModel,
        summary="Cancel a run (a finished run is returned unchanged)",
    )(cancel_run)
    r.post(
        "/runs/retry",
        status_code=202,
        response_model=RunList,
        summary="Retry the failed, dead or cancelled runs of some statuses (bulk)",
        responses={422: problem_responses(422)[422]},
    )(retry_runs)
    r.post(
        "/runs/{run_id}/retry",
        status_code=202,
        response_model=RunModel,
        summary="Retry a failed, dead or cancelled run (queued again, attempts kept)",
        responses={409: problem_responses(409)[409]},
    )(retry_run)
    r.get(
        "/runs/{run_id}/events",
        response_model=EventPage,
        summary="Events of a run: a JSON page, or a live SSE stream",
        description="With `Accept: text/event-stream` or `stream=true` the events stream as "
        "Server-Sent Events (`id` = seq), live until the run's terminal event, and the stream "
        "then ends; `Last-Event-ID` resumes exactly after that seq. Resuming a finished run at "
        "or past its terminal event answers 204 at once.",
        responses=_FOLLOW_DOC,
    )(run_events)
    r.get(
        "/runs/{run_id}/events/replay",
        response_class=StreamingResponse,
        summary="Replay the stored events of a run as SSE",
        responses=_SSE_DOC,
    )(replay_events)
    return r


def spec_router(route_class: type[APIRoute]) -> APIRouter:
    """``/run/{id}/events/replay``: the path the production-hardening guide names."""
    r = APIRouter(route_class=route_class, include_in_schema=False)
    r.get("/run/{run_id}/events/replay", response_class=StreamingResponse)(replay_events)
    return r


__all__ = [
    "CreateRun",
    "EventModel",
    "RetryRuns",
    "RunModel",
    "encode_sse",
    "router",
    "spec_router",
]
