"""PII redaction: replace personal data and secrets in text and JSON values with typed
placeholders (``[EMAIL]``, ``[CARD]``, ...) before they are stored, logged or exported.

A :class:`Redactor` is an ordered list of detectors: an org's custom patterns first (an org that
defines its own ``[EMPLOYEE_ID]`` wins over a built-in that would call it a phone number), then
the built-ins of :mod:`agent_sdk.governance.redact_patterns` that the org has not disabled.
Each detector replaces what it finds before the next one looks, and no placeholder contains a
digit or an ``@``, so a finding is never found twice and redacting twice changes nothing.

JSON values (:meth:`Redactor.redact_value`) keep their structure: dicts stay dicts with the same
number of entries, lists keep their length, numbers, booleans and null are untouched. Keys are
redacted like values (an e-mail address used as a key is still an e-mail address); two keys that
redact to the same text are kept apart with a ``#2``, ``#3`` suffix rather than merged. A value
nested deeper than :data:`MAX_DEPTH` is refused with InvalidInput: redaction fails closed, it
never stores what it could not look at.

Speed, since this runs on every event a run writes: patterns are compiled once; each text is
probed once for the digits and the few literals the detectors need (``@``, ``:``, ``asdk_``,
...), grouped under characters rare in prose so that a memchr rules out most of them, and only
detectors whose needs are met run their regex (prose without digits is scanned at hundreds of
MB/s); short clean texts (JSON keys, tool names) are remembered, so each is probed once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple, TypeVar

from agent_sdk.errors import InvalidInput
from agent_sdk.governance.redact_patterns import BUILTIN_NAMES, BUILTINS, Detector

T = TypeVar("T")
MAX_DEPTH = 64
_DIGIT_BYTES = b"0123456789"
# The memo of clean short texts: at most this many, of at most this many characters.
_MEMO_SIZE = 4096
_MEMO_CHARS = 64


class Finding(NamedTuple):
    name: str  # the detector (built-in or custom pattern) that found it
    text: str  # what was replaced


class Redactor:
    """Redacts text with ``detectors``, in order. Thread-safe, and meant to be shared: its only
    state is the memo of clean short texts, whose set operations are atomic."""

    def __init__(self, detectors: Iterable[Detector]) -> None:
        self.detectors: tuple[Detector, ...] = tuple(detectors)
        # Each text is probed once for every detector's first required strings; a detector
        # runs only if one of its own is present, and the text has its digits, its other
        # groups and at least the length of its shortest match.
        self._plan = tuple(
            (d, frozenset(d.requires[0]) if d.requires else None, d.requires[1:], _shortest(d))
            for d in self.detectors
        )
        self._shortest = min((plan[3] for plan in self._plan), default=1)
        self._probe = _probe_plan({h for _, first, _, _ in self._plan for h in first or ()})
        # Which detectors a text can need, looked up rather than tried one by one: by the
        # strings found (each of its first group), and by its digit count (digits-only ones).
        by_hint: dict[str, list[int]] = {}
        for i, (_, first, _, _) in enumerate(self._plan):
            for hint in first or ():
                by_hint.setdefault(hint, []).append(i)
        self._by_hint = {h: tuple(ix) for h, ix in by_hint.items()}
        self._top = top = max((d.min_digits for d in self.detectors), default=0)
        self._by_digits = tuple(
            tuple(
                i
                for i, (d, first, _, _) in enumerate(self._plan)
                if first is None and d.min_digits <= n
            )
            for n in range(top + 1)
        )
        # Short strings known to hold nothing (JSON keys, tool names, statuses repeat in every
        # event): a set of clean texts only, so no finding is ever kept in memory by it.
        self._clean: set[str] = set()

    @classmethod
    def builtin(cls, disabled: Iterable[str] = ()) -> Redactor:
        """The built-in detectors, less ``disabled``: what logs use, and an org without a
        policy."""
        off = set(disabled)
        return cls(d for name in BUILTIN_NAMES if name not in off for d in BUILTINS[name])

    def redact(self, text: str, found: list[Finding] | None = None) -> str:
        """``text`` with every finding replaced by its placeholder; each finding is appended to
        ``found`` when given."""
        if len(text) < self._shortest:
            return text
        short = len(text) <= _MEMO_CHARS
        if short and text in self._clean:
            return text
        out = self._redact(text, found)
        if short and out is text:
            if len(self._clean) >= _MEMO_SIZE:
                self._clean.clear()
            self._clean.add(text)
        return out

    def _redact(self, text: str, found: list[Finding] | None) -> str:
        digits, size, plan = _digit_count(text), len(text), self._plan
        chosen = [i for i in self._by_digits[min(digits, self._top)] if size >= plan[i][3]]
        for key, hints in self._probe:
            if key in text:
                for hint in hints:
                    if hint in text:
                        for i in self._by_hint[hint]:
                            if digits >= plan[i][0].min_digits and size >= plan[i][3]:
                                chosen.append(i)
        if not chosen:
            return text  # the common case: nothing any detector needs is in the text
        for i in sorted(set(chosen)):
            d, _, rest, _ = plan[i]
            if rest and not _present(rest, text):
                continue
            text = _apply(d, text, found)
        return text

    def redact_value(self, value: T, found: list[Finding] | None = None) -> T:
        """A copy of the JSON value with its strings (keys included) redacted; the same object
        when nothing needed redacting."""
        return self._walk(value, found, 0)  # type: ignore[no-any-return]

    def _walk(self, value: Any, found: list[Finding] | None, depth: int) -> Any:
        # Exact types first: this runs for every value of every event, and JSON holds little
        # else; subclasses (a str enum, an OrderedDict, a tuple) take the isinstance path.
        kind = type(value)
        if kind is str:
            return self.redact(value, found)
        if kind is int or kind is float or kind is bool or value is None:
            return value
        if not value and (kind is list or kind is dict):
            return value
        if depth >= MAX_DEPTH:
            raise _too_deep()
        if isinstance(value, dict):
            return self._walk_dict(value, found, depth)
        if isinstance(value, list | tuple):
            walk = self._walk
            items = [walk(item, found, depth + 1) for item in value]
            for new, old in zip(items, value, strict=True):
                if new is not old:
                    return items if isinstance(value, list) else tuple(items)
            return value
        if isinstance(value, str):
            return self.redact(value, found)
        return value  # numbers and anything else that is not text: never changed

    def _walk_dict(self, value: dict[Any, Any], found: list[Finding] | None, depth: int) -> Any:
        redact, walk = self.redact, self._walk
        out: dict[Any, Any] = {}
        changed = False
        for key, item in value.items():
            new_key = redact(key, found) if type(key) is str else key
            if new_key is not key and new_key != key:
                new_key = _unique(new_key, out, value)
                changed = True
            new_item = redact(item, found) if type(item) is str else walk(item, found, depth + 1)
            if new_item is not item:
                changed = True
            out[new_key] = new_item
        return out if changed else value


def _shortest(d: Detector) -> int:
    """The length of the shortest text ``d``'s regex can match (from the parse ``re`` itself
    makes): a text shorter than that is not scanned."""
    import importlib

    parser: Any = importlib.import_module("re._parser")
    return max(1, int(parser.parse(d.pattern.pattern, d.pattern.flags).getwidth()[0]))


# Characters rare in prose: a hint holding one is only looked for when that character is there.
_RARE = "_=:@/-.AEKSJ"


def _probe_plan(hints: set[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The hints grouped under a rare character of theirs (a memchr settles a whole group when
    it is absent, which a search for each multi-character hint over a long text would not);
    hints without one are grouped under "" and always looked for."""
    groups: dict[str, list[str]] = {}
    for hint in sorted(hints):
        key = next((c for c in _RARE if c in hint), "")
        groups.setdefault(key, []).append(hint)
    return tuple((key, tuple(group)) for key, group in sorted(groups.items()))


def _digit_count(text: str) -> int:
    """How many ASCII digits ``text`` has. Ten ``in`` tests first (each a memchr: most texts
    have no digit), then the UTF-8 bytes with the digits deleted (``bytes.translate`` is a C
    table loop; ``str.translate`` and ``str.count`` cost microseconds even on short text). In
    UTF-8 no byte of a multi-byte character is an ASCII digit, so the count is exact."""
    if not (
        "0" in text or "1" in text or "2" in text or "3" in text or "4" in text
        or "5" in text or "6" in text or "7" in text or "8" in text or "9" in text
    ):  # fmt: skip
        return 0
    raw = text.encode("utf-8", "surrogatepass")
    return len(raw) - len(raw.translate(None, _DIGIT_BYTES))


def _present(requires: tuple[tuple[str, ...], ...], text: str) -> bool:
    """Whether ``text`` has a string of every group (plain loops: generator expressions cost
    more than the substring tests themselves on short text)."""
    for group in requires:
        for hint in group:
            if hint in text:
                break
        else:
            return False
    return True


def _apply(d: Detector, text: str, found: list[Finding] | None) -> str:
    """``text`` with ``d``'s findings replaced. A search loop rather than ``re.sub``: a finding
    may be shorter than its match (a card number the regex ran past) or start before it (the
    local part of an e-mail address), and the scan goes on from the end of each finding."""
    search = d.pattern.search
    accept = d.accept
    parts: list[str] = []
    last = pos = 0
    while (m := search(text, pos)) is not None:
        span = accept(m) if accept is not None else m.span()
        if span is not None:
            start, end = span
            if last <= start < end:  # not reaching back into the previous finding
                if found is not None:
                    found.append(Finding(d.name, text[start:end]))
                parts += (text[last:start], d.placeholder)
                last = end
                pos = max(end, m.start() + 1)
                continue
        pos = m.end() if m.end() > m.start() else m.start() + 1
    if not parts:
        return text
    parts.append(text[last:])
    return "".join(parts)


def _unique(key: str, taken: dict[Any, Any], original: dict[Any, Any]) -> str:
    """``key``, or ``key#2``, ``key#3``...: two keys that redact alike both survive."""
    if key not in taken and key not in original:
        return key
    n = 2
    while f"{key}#{n}" in taken or f"{key}#{n}" in original:
        n += 1
    return f"{key}#{n}"


def _too_deep() -> InvalidInput:
    return InvalidInput(
        f"a value is nested more than {MAX_DEPTH} levels deep; redaction refuses what it "
        "cannot inspect",
        hint="flatten the structure (PII redaction is on: AGENT_SDK_PII_REDACTION_ENABLED)",
    )


def placeholders(findings: Sequence[Finding]) -> dict[str, int]:
    """How many findings of each detector: what a preview or a benchmark reports."""
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.name] = counts.get(f.name, 0) + 1
    return counts


__all__ = ["MAX_DEPTH", "Finding", "Redactor", "placeholders"]
