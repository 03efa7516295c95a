"""fs.read / fs.write / fs.list: confinement to AGENT_SDK_FS_ALLOWLIST, against hostile paths."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from agent_sdk.engine.builtin_tools import BUILTIN_TOOLS, host_allowed
from agent_sdk.engine.tools import ToolContext
from agent_sdk.errors import ToolError

OUTSIDE = "is outside the allowed roots (AGENT_SDK_FS_ALLOWLIST)"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """tmp/root (allowed) beside tmp/root2 (a sibling whose name shares the prefix) and a
    secret file outside both."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "notes.txt").write_text("hello notes")
    (root / "sub" / "deep.txt").write_text("deep")
    (tmp_path / "root2").mkdir()
    (tmp_path / "root2" / "secret.txt").write_text("sibling secret")
    (tmp_path / "secret.txt").write_text("top secret")
    return root


def ctx_for(*roots: Path) -> ToolContext:
    return ToolContext(run_id="r", fs_roots=tuple(str(r) for r in roots))


def run(name: str, ctx: ToolContext, **arguments: Any) -> Any:
    return asyncio.run(BUILTIN_TOOLS[name].call(ctx, arguments))


def refused(name: str, ctx: ToolContext, **arguments: Any) -> str:
    with pytest.raises(ToolError) as info:
        run(name, ctx, **arguments)
    return info.value.message


# -- what works ----------------------------------------------------------------------------------


def test_read_relative_to_the_first_root(root: Path) -> None:
    ctx = ctx_for(root)
    assert run("fs.read", ctx, path="notes.txt") == "hello notes"
    assert run("fs.read", ctx, path="sub/deep.txt") == "deep"
    assert run("fs.read", ctx, path="sub/../notes.txt") == "hello notes"
    assert run("fs.read", ctx, path=str(root / "notes.txt")) == "hello notes"
    assert run("fs.read", ctx, path="notes.txt", max_bytes=5) == "hello"


def test_a_second_root_is_reachable_by_absolute_path(root: Path, tmp_path: Path) -> None:
    ctx = ctx_for(root, tmp_path / "root2")
    assert run("fs.read", ctx, path=str(tmp_path / "root2" / "secret.txt")) == "sibling secret"


def test_list_is_sorted_with_types_and_sizes(root: Path) -> None:
    assert run("fs.list", ctx_for(root)) == [
        {"name": "notes.txt", "type": "file", "size": 11},
        {"name": "sub", "type": "dir", "size": None},
    ]
    assert run("fs.list", ctx_for(root), path="sub") == [
        {"name": "deep.txt", "type": "file", "size": 4}
    ]


def test_write_creates_replaces_and_appends(root: Path) -> None:
    ctx = ctx_for(root)
    out = run("fs.write", ctx, path="new/out.txt", content="abc")
    assert out == {"path": str(root / "new" / "out.txt"), "bytes": 3}
    run("fs.write", ctx, path="new/out.txt", content="de", append=True)
    assert (root / "new" / "out.txt").read_text() == "abcde"
    run("fs.write", ctx, path="new/out.txt", content="x")
    assert (root / "new" / "out.txt").read_text() == "x"


def test_a_symlink_that_stays_inside_is_followed_for_reading(root: Path) -> None:
    (root / "alias.txt").symlink_to(root / "notes.txt")
    assert run("fs.read", ctx_for(root), path="alias.txt") == "hello notes"


def test_a_root_that_is_itself_a_symlink_still_works(root: Path, tmp_path: Path) -> None:
    link = tmp_path / "link-to-root"
    link.symlink_to(root)
    assert run("fs.read", ctx_for(link), path="notes.txt") == "hello notes"


# -- hostile paths -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "../../etc/passwd",
        "../secret.txt",
        "sub/../../secret.txt",
        "/etc/passwd",
        "../root2/secret.txt",  # sibling whose name starts with the root's name
        "notes.txt\x00.png",
        "\x00",
    ],
)
def test_traversal_absolute_sibling_and_nul_are_refused(root: Path, path: str) -> None:
    ctx = ctx_for(root)
    for name in ("fs.read", "fs.list"):
        assert OUTSIDE in refused(name, ctx, path=path)
    assert OUTSIDE in refused("fs.write", ctx, path=path, content="pwned")


def test_sibling_prefix_by_absolute_path_is_refused(root: Path, tmp_path: Path) -> None:
    sibling = str(tmp_path / "root2" / "secret.txt")
    assert sibling.startswith(str(root))  # a string-prefix check would let this through
    assert OUTSIDE in refused("fs.read", ctx_for(root), path=sibling)


def test_a_symlink_escaping_the_root_is_refused(root: Path, tmp_path: Path) -> None:
    (root / "escape.txt").symlink_to(tmp_path / "secret.txt")
    (root / "escape_dir").symlink_to(tmp_path)
    ctx = ctx_for(root)
    assert OUTSIDE in refused("fs.read", ctx, path="escape.txt")
    assert OUTSIDE in refused("fs.read", ctx, path="escape_dir/secret.txt")
    assert OUTSIDE in refused("fs.list", ctx, path="escape_dir")
    assert OUTSIDE in refused("fs.write", ctx, path="escape_dir/planted.txt", content="x")
    assert not (tmp_path / "planted.txt").exists()


def test_write_through_a_symlink_is_refused_even_if_its_target_is_outside(
    root: Path, tmp_path: Path
) -> None:
    (root / "trap.txt").symlink_to(tmp_path / "secret.txt")
    (root / "dangling.txt").symlink_to(tmp_path / "created-outside.txt")
    ctx = ctx_for(root)
    assert "symlink" in refused("fs.write", ctx, path="trap.txt", content="overwritten")
    assert "symlink" in refused("fs.write", ctx, path="dangling.txt", content="x")
    assert (tmp_path / "secret.txt").read_text() == "top secret"
    assert not (tmp_path / "created-outside.txt").exists()


def test_listing_does_not_follow_symlinks_out(root: Path, tmp_path: Path) -> None:
    (root / "escape_dir").symlink_to(tmp_path)
    entry = next(e for e in run("fs.list", ctx_for(root)) if e["name"] == "escape_dir")
    assert entry["type"] == "file"  # the link itself, not the directory it points to


def test_no_roots_refuses_everything(root: Path) -> None:
    ctx = ToolContext(run_id="r")
    for name in ("fs.read", "fs.list"):
        assert OUTSIDE in refused(name, ctx, path=str(root / "notes.txt"))
    assert OUTSIDE in refused("fs.write", ctx, path="x.txt", content="x")


def test_the_root_itself_is_allowed_but_is_not_a_file(root: Path) -> None:
    ctx = ctx_for(root)
    assert "directory" in refused("fs.read", ctx, path=".")
    assert "does not name a file" in refused("fs.write", ctx, path=".", content="x")
    assert "does not name a file" in refused("fs.write", ctx, path="sub/..", content="x")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_special_files_are_not_read(root: Path) -> None:
    os.mkfifo(root / "pipe")
    assert "not a regular file" in refused("fs.read", ctx_for(root), path="pipe")


def test_missing_files_and_bad_arguments(root: Path) -> None:
    ctx = ctx_for(root)
    assert "no such file" in refused("fs.read", ctx, path="nope.txt")
    assert "no such directory" in refused("fs.list", ctx, path="nope")
    message = refused("fs.read", ctx, path=3, max_bytes=True, extra=1)
    assert "path: expected string" in message
    assert "max_bytes: expected integer" in message
    assert "extra: unexpected argument" in message
    assert "path: required" in refused("fs.read", ctx)
    assert "max_bytes: must be >= 1" in refused("fs.read", ctx, path="notes.txt", max_bytes=0)


# -- the http allowlist matcher (the fetches themselves are in test_engine_http.py) -------------


@pytest.mark.parametrize(
    ("host", "port", "allowlist", "allowed"),
    [
        ("api.example.com", 443, ["api.example.com"], True),
        ("API.Example.com.", 443, ["api.example.com"], True),
        ("api.example.com", 8443, ["api.example.com:8443"], True),
        ("api.example.com", 443, ["api.example.com:8443"], False),
        ("a.example.com", 443, ["*.example.com"], True),
        ("a.b.example.com", 80, ["*.example.com"], True),
        ("example.com", 443, ["*.example.com"], False),
        ("badexample.com", 443, ["*.example.com"], False),
        ("example.com.evil.net", 443, ["example.com"], False),
        ("127.0.0.1", 8080, ["127.0.0.1:8080"], True),
        ("::1", 8080, ["[::1]:8080"], True),
        ("api.example.com", 443, ["https://api.example.com"], True),
        ("anything.net", 443, [], False),
        ("anything.net", 443, ["*"], False),
    ],
)
def test_host_allowlist(host: str, port: int, allowlist: list[str], allowed: bool) -> None:
    assert host_allowed(host, port, allowlist) is allowed
