"""Start-up cost of the CLI against a minimal two-command Typer app, in the same run:
`agent-sdk --help`, `agent-sdk --local runs list -o json` on a database of 1,000 runs, and
`agent-sdk runs list -o json --server URL` against a running `agent-sdk up` on that database.

The commands run in interleaved rounds (each round runs every command ``--per-round`` times, in
a rotated order, and keeps each command's median), so a burst of load on the shared machine
hits the baseline and agent-sdk alike. Each ratio is reported as the median over the rounds
with its spread [min..max].

Bytecode is cached (in a directory of the run, for every program alike), as after a `pip
install`: with PYTHONDONTWRITEBYTECODE set, as in some containers, every call would compile
agent-sdk's modules from source while the baseline compiles one small file.

``--compare PATH`` also runs the CLI of another checkout (its ``agent_sdk`` put first on
PYTHONPATH) in the same rounds, e.g. a copy of main to measure a change before and after.

    python bench/cli_startup.py [--rounds 15] [--per-round 3] [--compare ../main]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _util import agent_sdk_cmd, agent_sdk_server, bench_env, median

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


Command = tuple[list[str], dict[str, str]]


def cost_ms(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one call, in ms. CPU time is the steadier of
    the two on a loaded machine: it leaves out the time spent waiting for a core."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = (time.perf_counter() - t) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return wall, cpu


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


def rounds(
    commands: dict[str, Command], n_rounds: int, per_round: int
) -> dict[str, list[tuple[float, float]]]:
    """Each command's median (wall, CPU) ms of every round, the order rotated per round."""
    names = list(commands)
    for name in names:  # warm the page cache and .pyc files before anything counts
        cost_ms(*commands[name])
    out: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for r in range(n_rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
        for _ in range(per_round):
            for name in order:
                samples[name].append(cost_ms(*commands[name]))
        for name in names:
            walls, cpus = zip(*samples[name], strict=True)
            out[name].append((median(walls), median(cpus)))
    return out


def line(what: str, ours: list[tuple[float, float]], base: list[tuple[float, float]]) -> str:
    parts = []
    for i, kind in ((0, "wall"), (1, "cpu")):
        o, b = [x[i] for x in ours], [x[i] for x in base]
        ratios = [x / y for x, y in zip(o, b, strict=True)]
        parts.append(
            f"{kind} {median(o):6.1f} vs {median(b):6.1f} ms "
            f"{median(ratios):.2f} [{min(ratios):.2f}..{max(ratios):.2f}]"
        )
    return f"{what:<40} " + "  ".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--per-round", type=int, default=3)
    ap.add_argument("--compare", type=Path, help="another checkout to run in the same rounds")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        env = bench_env(home, PYTHONPYCACHEPREFIX=str(home / "pycache"))
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        app = home / "minimal.py"
        app.write_text(MINIMAL)
        seed(env, 1000)
        with agent_sdk_server(home, env) as (url, token):
            py = sys.executable
            ours = {
                "help": ["--help"],
                "local": ["--local", "runs", "list", "-o", "json"],
                "remote": ["runs", "list", "-o", "json", "--server", url],
            }
            env = dict(env, AGENT_SDK_API_KEY=token)
            commands: dict[str, Command] = {
                "minimal --help": ([py, str(app), "--help"], env),
                "minimal cmd": ([py, str(app), "hello"], env),
            }
            commands.update({k: (agent_sdk_cmd(*a), env) for k, a in ours.items()})
            if args.compare is not None:
                path = os.pathsep.join([str(args.compare.resolve()), env.get("PYTHONPATH", "")])
                other = dict(env, PYTHONPATH=path.rstrip(os.pathsep))
                commands.update(
                    {f"{k} (compare)": (agent_sdk_cmd(*a), other) for k, a in ours.items()}
                )
            t = rounds(commands, args.rounds, args.per_round)
    load = os.getloadavg()
    print(
        f"CLI start-up: {args.rounds} interleaved rounds x {args.per_round} runs, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print("agent-sdk vs baseline: median ms, then ratio median [min..max] over the rounds")
    print(line("agent-sdk --help vs minimal --help", t["help"], t["minimal --help"]))
    # The minimal app's --help renders with rich, which agent-sdk does not load; its plain
    # command is the fairer floor for any Typer program's start-up.
    print(line("agent-sdk --help vs minimal cmd", t["help"], t["minimal cmd"]))
    print(line("--local runs list -o json (1,000 runs) vs cmd", t["local"], t["minimal cmd"]))
    print(line("runs list -o json --server URL vs cmd", t["remote"], t["minimal cmd"]))
    if args.compare is not None:
        print(f"this checkout vs {args.compare}:")
        for name, what in (
            ("help", "--help"),
            ("local", "--local runs list"),
            ("remote", "--server runs list"),
        ):
            print(line(f"  {what}", t[name], t[f"{name} (compare)"]))


if __name__ == "__main__":
    main()
