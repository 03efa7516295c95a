"""The built-in tools: ``fs.read``, ``fs.write``, ``fs.list`` and ``http.fetch``.

Confinement is their security feature. A file path is resolved against the first root of
``AGENT_SDK_FS_ALLOWLIST``, symlinks followed (``os.path.realpath``), and the result must be a
root or lie under one by path components (``os.path.commonpath``: ``/data2`` is not under
``/data``). A URL's host must match ``AGENT_SDK_HTTP_ALLOWLIST``, and so must every redirect hop:
redirects are followed here, one checked hop at a time, never by the HTTP client.

The schemas are written by hand and checked by a tiny validator, so the built-ins need no
pydantic (the CLI lists them without paying for it).
"""

from __future__ import annotations

import asyncio
import os
import stat
from typing import Any

from agent_sdk.engine.tools import Tool, ToolContext
from agent_sdk.errors import ToolError

DEFAULT_MAX_BYTES = 1_000_000
MAX_REDIRECTS = 5
_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "integer": int,
    "boolean": bool,
    "object": dict,
    "null": type(None),
}


def check_arguments(tool: Tool, arguments: Any) -> dict[str, Any]:
    """Required keys, no unknown keys, JSON types, integer minimums and enums; defaults filled."""
    schema = tool.parameters
    if not isinstance(arguments, dict):
        raise ToolError(f"invalid arguments for tool {tool.name!r}: expected an object")
    props: dict[str, Any] = schema["properties"]
    problems = [f"{k}: unexpected argument" for k in arguments if k not in props]
    problems += [f"{k}: required" for k in schema.get("required", ()) if k not in arguments]
    out: dict[str, Any] = {}
    for key, prop in props.items():
        if key not in arguments:
            if "default" in prop:
                out[key] = prop["default"]
            continue
        value = arguments[key]
        types = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
        # bool is an int in Python but not in JSON: a "true" max_bytes is a mistake.
        if not any(
            isinstance(value, _JSON_TYPES[t]) and not (t == "integer" and isinstance(value, bool))
            for t in types
        ):
            problems.append(f"{key}: expected {' or '.join(types)}")
        elif isinstance(value, int) and "minimum" in prop and value < prop["minimum"]:
            problems.append(f"{key}: must be >= {prop['minimum']}")
        elif "enum" in prop and value not in prop["enum"]:
            problems.append(f"{key}: must be one of {', '.join(prop['enum'])}")
        out[key] = value
    if problems:
        raise ToolError(f"invalid arguments for tool {tool.name!r}: " + "; ".join(problems))
    return out


def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


# -- file system -------------------------------------------------------------------------------


def _outside(path: str, hint: str | None = None) -> ToolError:
    return ToolError(
        f"path {path!r} is outside the allowed roots (AGENT_SDK_FS_ALLOWLIST)", hint=hint
    )


def _roots(ctx: ToolContext, path: str) -> list[str]:
    if not ctx.fs_roots:
        raise _outside(path, hint="no roots are allowed: set AGENT_SDK_FS_ALLOWLIST")
    if "\x00" in path:
        raise _outside(path)
    # Roots are resolved too: a root that is itself a symlink (/tmp on macOS) must still match.
    return [os.path.realpath(r) for r in ctx.fs_roots]


def _within(real: str, roots: list[str]) -> bool:
    for root in roots:
        try:
            if os.path.commonpath([real, root]) == root:
                return True
        except ValueError:  # different drives on Windows: certainly not under this root
            continue
    return False


def resolve_path(ctx: ToolContext, path: str) -> str:
    """The real path of ``path`` if it is a root or under one; ToolError otherwise."""
    roots = _roots(ctx, path)
    real = os.path.realpath(os.path.join(roots[0], path))
    if not _within(real, roots):
        raise _outside(path)
    return real


def resolve_write_target(ctx: ToolContext, path: str) -> str:
    """Where a write to ``path`` lands: the real parent directory (confined) + the file name.

    The final component is not resolved, so a symlink planted there cannot redirect the write;
    the caller refuses symlinks and opens with O_NOFOLLOW as well.
    """
    roots = _roots(ctx, path)
    joined = os.path.normpath(os.path.join(roots[0], path))
    parent, name = os.path.split(joined)
    if not name or name in (".", "..") or os.path.realpath(joined) in roots:
        raise ToolError(f"path {path!r} does not name a file")
    real_parent = os.path.realpath(parent)
    target = os.path.join(real_parent, name)
    if not _within(real_parent, roots) or not _within(target, roots):
        raise _outside(path)
    return target


def _read(ctx: ToolContext, path: str, max_bytes: int) -> str:
    real = resolve_path(ctx, path)
    try:
        fd = os.open(
            real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        )
    except FileNotFoundError:
        raise ToolError(f"no such file: {path!r}") from None
    except OSError as exc:
        raise ToolError(f"cannot read {path!r}: {exc.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise ToolError(f"{path!r} is a directory; use fs.list")
        raise ToolError(f"{path!r} is not a regular file")  # a FIFO or device may never end
    with os.fdopen(fd, "rb") as fh:
        return fh.read(max_bytes).decode("utf-8", errors="replace")


def _write(ctx: ToolContext, path: str, content: str, append: bool) -> dict[str, Any]:
    target = resolve_write_target(ctx, path)
    if os.path.islink(target):
        raise ToolError(f"refusing to write through the symlink {path!r}")
    if os.path.isdir(target):
        raise ToolError(f"{path!r} is a directory")
    data = content.encode("utf-8")
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    flags |= os.O_APPEND if append else os.O_TRUNC
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        fd = os.open(target, flags, 0o644)
    except OSError as exc:
        raise ToolError(f"cannot write {path!r}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return {"path": target, "bytes": len(data)}


def _list(ctx: ToolContext, path: str) -> list[dict[str, Any]]:
    real = resolve_path(ctx, path)
    if not os.path.isdir(real):
        raise ToolError(f"no such directory: {path!r}")
    out = []
    with os.scandir(real) as entries:
        for entry in entries:
            # Not following symlinks: a link pointing out of the roots must not reveal what
            # it points to (reading it is refused anyway).
            st = entry.stat(follow_symlinks=False)
            is_dir = stat.S_ISDIR(st.st_mode)
            out.append(
                {
                    "name": entry.name,
                    "type": "dir" if is_dir else "file",
                    "size": None if is_dir else st.st_size,
                }
            )
    return sorted(out, key=lambda e: e["name"])


class FsRead:
    name = "fs.read"
    description = "Read a text file under the allowed roots."
    parameters = _schema(
        {
            "path": {"type": "string", "description": "File path, relative to the first root."},
            "max_bytes": {
                "type": "integer",
                "minimum": 1,
                "default": DEFAULT_MAX_BYTES,
                "description": "Read at most this many bytes.",
            },
        },
        ["path"],
    )

    async def call(self, ctx: ToolContext, arguments: dict[str, Any]) -> Any:
        args = check_arguments(self, arguments)
        return await asyncio.to_thread(_read, ctx, args["path"], args["max_bytes"])


class FsWrite:
    name = "fs.write"
    description = "Write (or append) a text file under the allowed roots."
    parameters = _schema(
        {
            "path": {"type": "string", "description": "File path, relative to the first root."},
            "content": {"type": "string", "description": "The text to write."},
            "append": {"type": "boolean", "default": False, "description": "Append, not replace."},
        },
        ["path", "content"],
    )

    async def call(self, ctx: ToolContext, arguments: dict[str, Any]) -> Any:
        args = check_arguments(self, arguments)
        return await asyncio.to_thread(_write, ctx, args["path"], args["content"], args["append"])


class FsList:
    name = "fs.list"
    description = "List a directory under the allowed roots: name, type (file|dir) and size."
    parameters = _schema(
        {"path": {"type": "string", "default": ".", "description": "Directory path."}}, []
    )

    async def call(self, ctx: ToolContext, arguments: dict[str, Any]) -> Any:
        args = check_arguments(self, arguments)
        return await asyncio.to_thread(_list, ctx, args["path"])


# -- http ----------------------------------------------------------------------------------------

_DEFAULT_PORTS = {"http": 80, "https": 443}
_REDIRECT_STATUSES = {301, 302, 303, 307, 308}
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _parse_entry(entry: str) -> tuple[str, int | None] | None:
    """An allowlist entry as (host, port or None): ``host``, ``host:port``, ``[v6]:port``,
    ``*.domain`` or a URL whose scheme is ignored. None for an entry that cannot match."""
    e = entry.strip().lower()
    if "://" in e:
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(e)
            return (parts.hostname or "", parts.port)
        except ValueError:
            return None
    if e.startswith("["):
        host, _, rest = e[1:].partition("]")
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            return None
        return host, int(rest[1:]) if rest else None
    if e.count(":") == 1:
        host, port = e.split(":")
        return (host, int(port)) if port.isdigit() else None
    return e, None


def host_allowed(host: str, port: int, allowlist: tuple[str, ...] | list[str]) -> bool:
    """Whether ``host:port`` matches an entry: an exact host (any port), ``host:port``, or
    ``*.example.com``, which matches subdomains only (not ``example.com``, not ``badexample.com``).
    """
    host = host.lower().rstrip(".")
    for entry in allowlist:
        parsed = _parse_entry(entry)
        if parsed is None or not parsed[0]:
            continue
        e_host, e_port = parsed[0].rstrip("."), parsed[1]
        if e_port is not None and e_port != port:
            continue
        if e_host.startswith("*."):
            if host.endswith(e_host[1:]) and len(host) > len(e_host) - 1:
                return True
        elif host == e_host:
            return True
    return False


def _checked_url(raw: Any, ctx: ToolContext) -> Any:
    """The URL parsed by httpx (the parser that will connect), refused unless allowed."""
    import httpx

    try:
        url = httpx.URL(raw)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise ToolError(f"invalid URL {raw!r}") from None
    if url.scheme not in _DEFAULT_PORTS:
        raise ToolError(f"only http and https URLs are allowed, not {str(url)!r}")
    if not url.host:
        raise ToolError(f"URL {str(url)!r} has no host")
    port = url.port or _DEFAULT_PORTS[url.scheme]
    if not host_allowed(url.host, port, ctx.http_allowlist):
        raise ToolError(
            f"host {url.host!r} is not in the allowed hosts (AGENT_SDK_HTTP_ALLOWLIST)",
            hint=None
            if ctx.http_allowlist
            else "no hosts are allowed: set AGENT_SDK_HTTP_ALLOWLIST",
        )
    return url


async def _read_capped(response: Any, max_bytes: int) -> tuple[bytes, bool]:
    """At most ``max_bytes`` of the body; stops reading (and so downloading) at the cap."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        if size + len(chunk) > max_bytes:
            chunks.append(chunk[: max_bytes - size])
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), False


def _decode(data: bytes, charset: str | None) -> str:
    try:
        return data.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return data.decode("utf-8", errors="replace")


async def _fetch(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    import httpx

    url = _checked_url(args["url"], ctx)
    method: str = args["method"]
    headers = {str(k): v for k, v in args["headers"].items()}
    if any(not isinstance(v, str) for v in headers.values()):
        raise ToolError("header values must be strings")
    if any(k.lower() == "host" for k in headers):
        raise ToolError("the Host header cannot be set")
    # Compressed bodies could expand far past max_bytes in one chunk: ask for them plain.
    if not any(k.lower() == "accept-encoding" for k in headers):
        headers["Accept-Encoding"] = "identity"
    body: bytes | None = args["body"].encode("utf-8") if args["body"] is not None else None
    try:
        # trust_env=False: no proxy variables and no ~/.netrc credentials sneak into requests an
        # agent makes; what a fetch sends is exactly what the tool call asked for.
        async with httpx.AsyncClient(
            follow_redirects=False, timeout=httpx.Timeout(ctx.http_timeout), trust_env=False
        ) as client:
            for hop in range(MAX_REDIRECTS + 1):
                if ctx.cancelled():
                    raise ToolError("the run was cancelled")
                request = client.build_request(method, url, headers=headers, content=body)
                response = await client.send(request, stream=True)
                try:
                    location = response.headers.get("location")
                    if response.status_code not in _REDIRECT_STATUSES or not location:
                        data, truncated = await _read_capped(response, args["max_bytes"])
                        return {
                            "status": response.status_code,
                            "headers": dict(response.headers.items()),
                            "body": _decode(data, response.charset_encoding),
                            "truncated": truncated,
                            "url": str(response.url),
                        }
                finally:
                    await response.aclose()
                if hop == MAX_REDIRECTS:
                    raise ToolError(f"too many redirects (more than {MAX_REDIRECTS})")
                # Each hop is checked like the first URL: an allowed host must not be able to
                # bounce the request to one that is not.
                next_url = _checked_url(response.url.join(location), ctx)
                if (next_url.scheme, next_url.host, next_url.port) != (
                    url.scheme,
                    url.host,
                    url.port,
                ):
                    headers = {
                        k: v
                        for k, v in headers.items()
                        if k.lower() not in ("authorization", "cookie")
                    }
                if (
                    response.status_code == 303
                    and method != "HEAD"
                    or (response.status_code in (301, 302) and method == "POST")
                ):
                    method, body = "GET", None
                url = next_url
    except httpx.TimeoutException:
        raise ToolError(f"request to {url.host} timed out after {ctx.http_timeout:g}s") from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise ToolError(f"request to {url.host} failed: {exc}") from None
    raise AssertionError("unreachable")  # the loop returns or raises


class HttpFetch:
    name = "http.fetch"
    description = (
        "Fetch a URL over HTTP(S) from an allowed host. Returns status, headers and body text."
    )
    parameters = _schema(
        {
            "url": {"type": "string", "description": "An http:// or https:// URL."},
            "method": {"type": "string", "enum": _METHODS, "default": "GET"},
            "headers": {"type": "object", "default": {}, "description": "Request headers."},
            "body": {"type": ["string", "null"], "default": None, "description": "Request body."},
            "max_bytes": {
                "type": "integer",
                "minimum": 1,
                "default": DEFAULT_MAX_BYTES,
                "description": "Return at most this many bytes of the body.",
            },
        },
        ["url"],
    )

    async def call(self, ctx: ToolContext, arguments: dict[str, Any]) -> Any:
        if isinstance(arguments, dict) and isinstance(arguments.get("method"), str):
            arguments = {**arguments, "method": arguments["method"].upper()}
        return await _fetch(ctx, check_arguments(self, arguments))


BUILTIN_TOOLS: dict[str, Tool] = {t.name: t for t in (FsRead(), FsWrite(), FsList(), HttpFetch())}
