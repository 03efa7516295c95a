"""Start-up cost of the CLI: `agent-sdk --help` and `agent-sdk runs list -o json` on a local
database of 1,000 runs, against a minimal two-command Typer app, in the same run.

    python bench/cli_startup.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _util import agent_sdk_cmd, bench_env, median, row

MINIMAL = """
import typer
app = typer.Typer()

@app.command()
def hello(name: str = "world") -> None:
    print("hello", name)

@app.command()
def bye() -> None:
    print("bye")

app()
"""


def wall(cmd: list[str], env: dict[str, str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
        )
        times.append((time.perf_counter() - t) * 1000)
    return median(times)


def seed(env: dict[str, str], n: int) -> None:
    code = (
        "from agent_sdk.config import load_settings\n"
        "from agent_sdk.store import store_from_settings\n"
        "from agent_sdk.ids import new_id, utcnow\n"
        "from agent_sdk.records import Run, RunStatus\n"
        "s = store_from_settings(load_settings()); s.migrate()\n"
        "with s.transaction():\n"
        f"    for i in range({n}):\n"
        "        t = utcnow()\n"
        "        s.insert_run(Run(new_id('run'), 'default', 'demo', RunStatus.SUCCEEDED,"
        " f'input {i}', t, t, output='ok'))\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        env = bench_env(home)
        app = home / "minimal.py"
        app.write_text(MINIMAL)
        seed(env, 1000)
        base_help = wall([sys.executable, str(app), "--help"], env, args.repeat)
        base_cmd = wall([sys.executable, str(app), "hello"], env, args.repeat)
        ours_help = wall(agent_sdk_cmd("--help"), env, args.repeat)
        ours_list = wall(agent_sdk_cmd("runs", "list", "-o", "json", "--local"), env, args.repeat)
    print(f"CLI start-up, median of {args.repeat} runs (baseline: minimal two-command Typer app)")
    print(row("agent-sdk --help vs minimal --help", ours_help, base_help, "ms"))
    # The minimal app's --help renders with rich, which agent-sdk does not load; its plain
    # command is the fairer floor for any Typer program's start-up.
    print(row("agent-sdk --help vs minimal cmd", ours_help, base_cmd, "ms"))
    print(row("runs list -o json (1,000 runs) vs minimal cmd", ours_list, base_cmd, "ms"))


if __name__ == "__main__":
    main()
