"""Every benchmark in bench/ runs in a short form and prints its comparison.

This catches a benchmark that rots (an import that moved, a setting renamed, a baseline's API
changed) when it happens, not when someone next wants figures. It asserts that the script exits
0 and prints a ratio line, never what the figures are: timings on a shared CI machine prove
nothing. A script whose optional baseline (huey, Celery, RQ, sse-starlette, wrk; the `bench`
extra and the Debian package `wrk`) is not installed is skipped with the reason.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import POSTGRES_URL, REDIS_URL

ROOT = Path(__file__).resolve().parent.parent
PG = ["--postgres", POSTGRES_URL]

# script, its short form, and what it needs beyond the test extra ("wrk" is a program).
CASES: list[Any] = [
    ("audit.py", ["--records", "50", "--rounds", "1", *PG], ()),
    ("auth_overhead.py", ["--seconds", "1"], ("wrk",)),
    ("cli_startup.py", ["--rounds", "1", "--per-round", "1"], ()),
    ("create_wait_wrk.py", ["--quick"], ("wrk", "sse_starlette")),
    ("db_copy.py", ["--events", "200", "--rounds", "1"], ()),
    ("deletion.py", ["--runs", "10", "--events", "5", "--rounds", "1"], ()),
    ("encryption.py", ["--events", "50", "--rounds", "1", *PG], ()),
    ("fanout.py", ["--events", "20", "--appends", "50", "--repeat", "1"], ()),
    ("http_create.py", ["--seconds", "1"], ("wrk", "sse_starlette")),
    ("list_scaling.py", ["--small", "1000", "--big", "2000", "--repeat", "3"], ()),
    ("queue_cycle.py", ["--jobs", "50", "--rounds", "1"], ("huey",)),
    ("ratelimit.py", ["--hits", "200", "--redis", REDIS_URL], ()),
    ("redaction.py", ["--events", "50", "--rounds", "1", *PG], ()),
    ("retention.py", ["--runs", "50", "--events", "2", "--batch", "20", "--rounds", "1"], ()),
    ("roundtrip.py", ["--runs", "5"], ("sse_starlette",)),
    ("scale_out.py", ["--quick", *PG], ("celery", "rq")),
    ("sse.py", ["--events", "100", "--repeat", "1"], ("sse_starlette",)),
    ("worker_throughput.py", ["--quick"], ("huey",)),
    ("worker_startup.py", ["--rounds", "1"], ()),
]


def test_every_benchmark_has_a_short_form_here() -> None:
    scripts = {p.name for p in (ROOT / "bench").glob("*.py") if not p.name.startswith("_")}
    assert scripts - {"bare_app.py"} == {_values(case)[0] for case in CASES}


def _values(case: Any) -> tuple[Any, ...]:
    return tuple(case.values if hasattr(case, "values") else case)


def _missing(needs: tuple[str, ...]) -> list[str]:
    return [
        need
        for need in needs
        if (shutil.which(need) is None if need == "wrk" else importlib.util.find_spec(need) is None)
    ]


@pytest.mark.slow
@pytest.mark.parametrize(("script", "args", "needs"), CASES, ids=[_values(c)[0] for c in CASES])
def test_benchmark_runs_in_short_form(
    script: str, args: list[str], needs: tuple[str, ...], tmp_path: Path
) -> None:
    missing = _missing(needs)
    if missing:
        pytest.skip(f"{script} needs {', '.join(missing)} (pip install -e '.[bench]'; wrk: apt)")
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, PYTHONPATH=path, AGENT_SDK_BENCH_POSTGRES_URL=POSTGRES_URL,
               AGENT_SDK_TEST_POSTGRES_URL=POSTGRES_URL)  # fmt: skip
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, f"{script} failed:\n{done.stdout}\n{done.stderr[-4000:]}"
    assert "ratio" in done.stdout, f"{script} printed no ratio line:\n{done.stdout}"
