"""Is an org's custom redaction pattern safe to run on every stored string?

A custom pattern runs on run inputs, outputs and every event payload of its org, texts of up to
a megabyte, inside the write path. A pattern that backtracks exponentially (``(a+)+b``) or
quadratically (``\\w+x`` on a long word) would stall a worker on one hostile input. Python's
``re`` cannot be interrupted, so the defence is to refuse such patterns when they are set:

* every repetition is bounded (``{1,64}``, ``?``; no ``*``, ``+`` or ``{n,}``), at most
  :data:`MAX_REPEAT` times: the work per start position is then bounded, and a scan linear;
* the product of the ranges of the variable repetitions (nested or one after another), a
  bound on the ways a match can be tried from one position, is at most :data:`MAX_BRANCHING`:
  this is what refuses ``(a{1,100}){1,100}`` and ``\\d{0,200}\\d{0,200}\\d{0,200}``;
* no back-references (they make matching NP-hard) and no pattern that can match the empty
  string (it would insert placeholders between characters);
* and then a probe: the pattern is timed on a few long strings made of its own characters; one
  that is still slow there is refused with the time it took.

The parse uses ``re._parser``, the standard library's own parser: the same tree ``re.compile``
builds, so what is checked is what will run.
"""

from __future__ import annotations

import re
import time
from typing import Any

from agent_sdk.errors import InvalidInput

MAX_PATTERN_CHARS = 512
MAX_REPEAT = 256
MAX_BRANCHING = 2048
# The probe: strings of this many characters must be scanned within PROBE_SECONDS each (of
# CPU time).
PROBE_CHARS = 4096
PROBE_SECONDS = 0.25


def compile_safe(pattern: str, name: str, *, probe: bool = True) -> re.Pattern[str]:
    """``pattern`` compiled, or InvalidInput saying why it is refused (``probe=False``: the
    static checks only)."""
    if not isinstance(pattern, str) or not pattern:
        raise _bad(name, "the regex must be a non-empty string")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise _bad(name, f"the regex is longer than {MAX_PATTERN_CHARS} characters")
    try:
        compiled = re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        raise _bad(name, f"the regex does not compile: {exc}") from None
    tree = _stdlib("re._parser").parse(pattern)
    if tree.getwidth()[0] == 0:
        raise _bad(name, "the regex can match an empty string", "require at least one character")
    branching = _branching(list(tree), name)
    if branching > MAX_BRANCHING:
        raise _bad(
            name,
            f"the regex may try about {branching:,} ways to match from one position "
            f"(at most {MAX_BRANCHING:,})",
            "use fewer or narrower repetitions, e.g. \\d{6} instead of \\d{1,6} where the "
            "length is known",
        )
    if probe:
        _probe(compiled, name, pattern)
    return compiled


def _branching(items: list[Any], name: str) -> int:
    """The product of (max - min + 1) over the variable repetitions in ``items`` (recursing
    into groups, alternatives and look-arounds); raises on what is refused outright."""
    c = _stdlib("re._constants")
    total = 1
    for op, av in items:
        if op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
            lo, hi, body = av
            if hi is c.MAXREPEAT or hi > MAX_REPEAT:
                raise _bad(
                    name,
                    f"every repetition must be bounded, at most {MAX_REPEAT} times "
                    "(no *, + or {n,})",
                    "write {1,64} instead of +, {0,64} instead of *",
                )
            inner = _branching(list(body), name)
            # A repeated body multiplies its own choices once per repetition.
            total *= (hi - lo + 1) * min(inner ** max(hi, 1), MAX_BRANCHING + 1)
        elif op is c.SUBPATTERN:
            total *= _branching(list(av[-1]), name)
        elif op is c.BRANCH:
            total *= sum(_branching(list(alt), name) for alt in av[1])
        elif op in (c.ASSERT, c.ASSERT_NOT):
            total *= _branching(list(av[1]), name)
        elif op is c.ATOMIC_GROUP:
            total *= _branching(list(av), name)
        elif op in (c.GROUPREF, c.GROUPREF_EXISTS):
            raise _bad(name, "back-references are not allowed", "match the text itself instead")
        if total > MAX_BRANCHING:
            return total
    return total


def _probe(compiled: re.Pattern[str], name: str, pattern: str) -> None:
    """Time the pattern on long runs of its own characters (and of the usual classes), where a
    super-linear pattern shows itself."""
    letters = sorted({ch for ch in pattern if ch.isprintable() and ch not in "\\()[]{}|?*+^$"})
    seeds = ["a", "0", " ", "aA0-_.@", "".join(letters[:16]) or "x"]
    for seed in seeds:
        text = (seed * (PROBE_CHARS // len(seed) + 1))[:PROBE_CHARS] + "\x00"
        # The CPU time of this thread, not the wall clock: the question is what the pattern
        # costs, and a busy machine that preempts the probe must not make a cheap one look slow.
        started = time.thread_time()
        for _ in compiled.finditer(text):
            if time.thread_time() - started > PROBE_SECONDS:
                break
        took = time.thread_time() - started
        if took > PROBE_SECONDS:
            raise _bad(
                name,
                f"the regex took {took * 1000:.0f} ms to scan {PROBE_CHARS} characters "
                f"(at most {PROBE_SECONDS * 1000:.0f} ms)",  # which ones: never the pattern's
                "simplify it: fewer repetitions, fewer alternatives that can match the same text",
            )


def _stdlib(module: str) -> Any:
    """A private module of ``re`` (its parser and opcodes: the very ones ``re.compile`` uses;
    typeshed does not describe them, hence the import by name)."""
    import importlib

    return importlib.import_module(module)


def _bad(name: str, why: str, hint: str | None = None) -> InvalidInput:
    return InvalidInput(f"custom pattern {name!r}: {why}", hint=hint, pattern=name)
