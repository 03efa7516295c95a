"""PII redaction: event writes per second with redaction on, against the same writes with it
off, in the same run; and the redactor's own speed in MB/s against plain ``str`` scans.

Event writes go through the core write path as a running attempt takes it: the org's Redactor
is looked up once per attempt (``org_redactor``, cached per process), then each event payload is
redacted and appended with ``store.append_event`` (one transaction per event). Baseline: the
very same payloads appended with redaction off. Payloads are what runs write (model deltas,
model responses with tool calls and usage, tool results of a few hundred bytes), in three mixes:
no PII, PII in every payload, and no PII under an org policy with three custom patterns.

The text rows time ``Redactor.redact`` on 1 MB of prose: without digits or ``@`` (the fast
path), with numbers but no PII, and with PII in every sentence. Baselines: ``str.find`` of a
character that is absent (a memchr, the floor of any scan) and ``str.lower`` (one pass that
builds a new string, as redaction does when it replaces).

    python bench/redaction.py [--events 3000] [--rounds 4] [--postgres postgresql://...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _util import median, row

from agent_sdk.config import Settings
from agent_sdk.core.redaction import org_redactor
from agent_sdk.governance.redact import Redactor
from agent_sdk.governance.redact_policy import SETTING, invalidate
from agent_sdk.ids import new_id, utcnow
from agent_sdk.records import Run, RunStatus
from agent_sdk.store import open_store
from agent_sdk.store.base import Store

ORG = "default"
CUSTOM = {
    "patterns": [
        {"name": "employee_id", "regex": r"EMP-\d{6}"},
        {"name": "ticket", "regex": r"TCK-[A-Z]{2}\d{5}"},
        {"name": "account", "regex": r"ACC\d{8}"},
    ]
}


def payloads(pii: bool, n: int) -> list[tuple[str, dict[str, Any]]]:
    """``n`` event payloads shaped like a run's: deltas, responses with tool calls, results."""
    out: list[tuple[str, dict[str, Any]]] = []
    for i in range(n):
        who = f"customer{i}@example.com, +44 20 7946 {1000 + i % 9000}" if pii else f"customer {i}"
        card = "4111 1111 1111 1111" if pii else "on file"
        kind = i % 4
        if kind == 0:
            out.append(("model.delta", {"text": f"Looking up the order for {who} now"}))
        elif kind == 1:
            out.append(("model.response", {
                "step": i, "text": f"I will check the account of {who}.",
                "tool_calls": [{"id": f"call_{i}", "name": "crm.lookup",
                                "arguments": {"query": who, "limit": 5}}],
                "usage": {"input_tokens": 812, "output_tokens": 64},
            }))  # fmt: skip
        elif kind == 2:
            out.append(("tool.result", {
                "id": f"call_{i}", "name": "crm.lookup", "ok": True,
                "result": {"name": "J. Doe", "contact": who, "card": card, "orders": [
                    {"id": f"ORD-{i:06d}", "total": 129.5, "status": "shipped",
                     "note": "left with the neighbour at the back door"}]},
            }))  # fmt: skip
        else:
            out.append(("model.response", {
                "step": i, "text": f"The order of {who} shipped on Tuesday; the card {card} was "
                "charged 129.50 EUR. Anything else I can help with?",
                "tool_calls": [], "usage": {"input_tokens": 1024, "output_tokens": 48},
            }))  # fmt: skip
    return out


def new_run(store: Store) -> str:
    now = utcnow()
    run = Run(new_id("run"), ORG, "bench", RunStatus.RUNNING, "x", now, now)
    return store.insert_run(run).id


def write_rate(store: Store, settings: Settings, events: list[tuple[str, dict[str, Any]]]) -> float:
    """Events per second through the attempt's write path (Attempts._drive's emit)."""
    run_id = new_run(store)
    started = time.perf_counter()
    clean = org_redactor(settings, store, ORG)  # once per attempt
    for kind, data in events:
        if clean is not None:
            data = clean.redact_value(data)
        store.append_event(ORG, run_id, kind, data)
    return len(events) / (time.perf_counter() - started)


def one_round(store: Store, n: int, r: int) -> dict[str, float]:
    """Each mix on and off back to back, the order swapped every round (a database warms up,
    and other load comes and goes: neither side may always go first)."""
    off, on = Settings(), Settings(pii_redaction_enabled=True)
    clean, dirty = payloads(False, n), payloads(True, n)
    out: dict[str, float] = {}
    for mix, events, custom in (("clean", clean, False), ("pii", dirty, False),
                                ("custom", clean, True)):  # fmt: skip
        store.set_org_setting(ORG, SETTING, CUSTOM if custom else None)
        invalidate(store, ORG)
        first, second = (off, on) if r % 2 == 0 else (on, off)
        a, b = write_rate(store, first, events), write_rate(store, second, events)
        out[f"off_{mix}"], out[f"on_{mix}"] = (a, b) if first is off else (b, a)
    store.set_org_setting(ORG, SETTING, None)
    invalidate(store, ORG)
    return out


def redaction_cost(n: int) -> dict[str, float]:
    """Microseconds of redact_value per payload, without the database: the part of an event
    write that redaction adds."""
    redactor = Redactor.builtin()
    out = {}
    for mix, events in (("clean", payloads(False, n)), ("pii", payloads(True, n))):
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for _, data in events:
                redactor.redact_value(data)
            best = min(best, time.perf_counter() - started)
        out[mix] = best / n * 1e6
    return out


def mb_per_s(fn: Callable[[str], object], text: str, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn(text)
        times.append(time.perf_counter() - started)
    return len(text) / 1e6 / min(times)


def text_rows() -> None:
    size = 1_000_000
    prose = "The agent read the customer's request, checked the knowledge base and drafted a "
    prose += "polite answer about delivery times and the return policy of the shop. "
    numbers = "Order 12 shipped on the 3rd; 45 items remain, step 7 of 9 took 120 ms at 99.5% "
    numbers += "success. Version 2 of the report covers Q3 and section 4 lists 16 open tasks. "
    pii = "Mail jane.doe@example.com or call +44 20 7946 0958 about card 4111 1111 1111 1111 "
    pii += "and IBAN DE89 3704 0044 0532 0130 00; the request came from 203.0.113.7 today. "
    redactor = Redactor.builtin()
    texts = {
        "no digits or @": (prose * (size // len(prose) + 1))[:size],
        "numbers, no PII": (numbers * (size // len(numbers) + 1))[:size],
        "PII in every sentence": (pii * (size // len(pii) + 1))[:size],
    }
    print("\nredactor on 1 MB of text, best of 3 (higher is better)")
    for name, text in texts.items():
        ours = mb_per_s(redactor.redact, text)
        memchr = mb_per_s(lambda t: t.find("\x00"), text)
        lower = mb_per_s(str.lower, text)
        print(row(f"redact, {name} vs str.find", ours, memchr, "MB/s", True))
        print(row(f"redact, {name} vs str.lower", ours, lower, "MB/s", True))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--postgres", metavar="URL", help="also measure on this Postgres database")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        targets = {"sqlite": f"sqlite:///{Path(tmp) / 'bench.db'}"}
        if args.postgres:
            targets["postgres"] = args.postgres
        for name, url in targets.items():
            store = open_store(url)
            store.migrate()
            try:
                store.ensure_org(ORG)
                results = [one_round(store, args.events, r) for r in range(args.rounds)]
            finally:
                store.close()
            m = {k: median([r[k] for r in results]) for k in results[0]}
            print(f"event writes on {name}, {args.events:,} events x {args.rounds} rounds, median")
            print("(baseline: the same payloads written with redaction off, same run)")
            print(row("redaction on, payloads without PII", m["on_clean"], m["off_clean"], "ev/s",
                      True))  # fmt: skip
            print(
                row("redaction on, PII in every payload", m["on_pii"], m["off_pii"], "ev/s", True)
            )
            print(row("on, no PII, org with 3 custom patterns", m["on_custom"], m["off_custom"],
                      "ev/s", True))  # fmt: skip
    cost = redaction_cost(args.events)
    print("\nredact_value alone, per payload, best of 3 (lower is better)")
    print(f"  payloads without PII {cost['clean']:8.1f} us    PII in every payload "
          f"{cost['pii']:8.1f} us")  # fmt: skip
    text_rows()


if __name__ == "__main__":
    main()
