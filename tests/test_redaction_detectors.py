"""The built-in detectors of PII redaction on their own: the corpus of positives and look-alikes
(precision and recall per type, printed, with floors), the checksums they rest on, the walk over
JSON values, and hostile text (huge, pathological, odd unicode) that must neither leak nor hang.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from agent_sdk.errors import InvalidInput
from agent_sdk.governance import redact_checks as checks
from agent_sdk.governance.redact import MAX_DEPTH, Finding, Redactor
from agent_sdk.governance.redact_patterns import BUILTIN_NAMES, BUILTIN_PLACEHOLDERS

CORPUS = Path(__file__).parent / "data" / "pii_corpus.jsonl"
FLOOR_PRECISION = 0.97
FLOOR_RECALL = 0.95
# Per type, looser: a type has a few dozen positives, so one miss moves it by several points.
FLOOR_TYPE = 0.9

redactor = Redactor.builtin()


def load_corpus() -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]
    return [r for r in rows if r]


# -- the corpus -----------------------------------------------------------------------------------
def test_corpus_precision_and_recall_per_type(capsys: pytest.CaptureFixture[str]) -> None:
    """Counts (type, exact text) pairs: a finding of the wrong type or the wrong extent is both
    a false positive and a false negative."""
    rows = load_corpus()
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for row in rows:
        found: list[Finding] = []
        redactor.redact(row["text"], found)
        expected = Counter((p["type"], p["value"]) for p in row["pii"])
        got = Counter((f.name, f.text) for f in found)
        for key, n in expected.items():
            tp[key[0]] += min(n, got[key])
            fn[key[0]] += n - min(n, got[key])
        for key, n in got.items():
            fp[key[0]] += n - min(n, expected[key])
    lines = [f"{'type':<14}{'tp':>5}{'fp':>5}{'fn':>5}{'precision':>11}{'recall':>8}"]
    for name in BUILTIN_NAMES:
        p, r = _ratio(tp[name], fp[name]), _ratio(tp[name], fn[name])
        lines.append(f"{name:<14}{tp[name]:>5}{fp[name]:>5}{fn[name]:>5}{p:>11.3f}{r:>8.3f}")
        assert tp[name] >= 5, f"the corpus has too few {name} positives to measure"
        assert p >= FLOOR_TYPE and r >= FLOOR_TYPE, (name, p, r)
    total_tp, total_fp, total_fn = sum(tp.values()), sum(fp.values()), sum(fn.values())
    precision, recall = _ratio(total_tp, total_fp), _ratio(total_tp, total_fn)
    lines.append(f"{'overall':<14}{total_tp:>5}{total_fp:>5}{total_fn:>5}"
                 f"{precision:>11.3f}{recall:>8.3f}")  # fmt: skip
    with capsys.disabled():
        print(f"\nPII corpus: {len(rows)} lines, {sum(len(r['pii']) for r in rows)} positives")
        print("\n".join(lines))
    assert precision >= FLOOR_PRECISION
    assert recall >= FLOOR_RECALL


def _ratio(good: int, bad: int) -> float:
    return good / (good + bad) if good + bad else 1.0


def test_the_corpus_is_big_and_balanced_enough_to_mean_something() -> None:
    rows = load_corpus()
    negatives = [r for r in rows if not r["pii"]]
    assert len(rows) >= 300 and len(negatives) >= 150
    types = Counter(p["type"] for r in rows for p in r["pii"])
    assert set(types) == set(BUILTIN_NAMES)


def test_every_detected_corpus_value_is_gone_from_the_output() -> None:
    """What the findings say was replaced really is absent from the redacted text."""
    for row in load_corpus():
        found: list[Finding] = []
        out = redactor.redact(row["text"], found)
        for f in found:
            assert f.text not in out, (row["text"], f)
            assert BUILTIN_PLACEHOLDERS[f.name] in out


# -- rules of single detectors --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pay 4111 1111 1111 1111 now", "pay [CARD] now"),
        ("pay 4111 1111 1111 1112 now", "pay 4111 1111 1111 1112 now"),  # Luhn fails
        ("id 1111 1111 1111 1117", "id 1111 1111 1111 1117"),  # Luhn ok, no network issues 1
        ("4111-1111 1111-1111", "4111-1111 1111-1111"),  # mixed separators
        ("4111 1111 1111 1111 2026", "[CARD] 2026"),  # the year after it is not part of it
        ("cards 4111111111111111 5500000000000004", "cards [CARD] [CARD]"),
        ("DE89 3704 0044 0532 0130 00 EUR 50", "[IBAN] EUR 50"),
        ("DE89 3704 0044 0532 0130 01", "DE89 3704 0044 0532 0130 01"),  # mod 97 fails
        ("SSN 078-05-1120", "SSN [NATIONAL_ID]"),
        ("000-12-3456 666-12-3456 912-12-3456", "000-12-3456 666-12-3456 912-12-3456"),
        ("order 123456789", "order 123456789"),  # bare digits without the word
        ("SSN: 123456789", "SSN: [NATIONAL_ID]"),
        ("NINO AB123456C", "NINO [NATIONAL_ID]"),
        ("NINO QQ123456C", "NINO QQ123456C"),  # QQ is never allocated
        ("host 10.1.2.3:443", "host [IP]:443"),
        ("version 1.2.3.4, 1.2.3.4.5, 999.1.1.1", "version 1.2.3.4, 1.2.3.4.5, 999.1.1.1"),
        ("at fe80::1 and ::1 but not std::vector", "at [IP] and [IP] but not std::vector"),
        ("Authorization: Bearer abcdef.ghijkl", "Authorization: Bearer [BEARER_TOKEN]"),
        ("Bearer of bad news", "Bearer of bad news"),
        ("icon@2x.png and lodash@4.17.21", "icon@2x.png and lodash@4.17.21"),
        ("a@b.com@c.org", "[EMAIL]@c.org"),
        ("2024-01-15 10:30:00", "2024-01-15 10:30:00"),
        ("(415) 555-2671 / 415-155-2671", "[PHONE] / 415-155-2671"),  # exchange 1xx invalid
        ("https://user:s3cret@example.com/x", "https://user:[SECRET]@example.com/x"),
        ("password: ******** / password: required", "password: ******** / password: required"),
    ],
)
def test_detector_rules(text: str, expected: str) -> None:
    assert redactor.redact(text) == expected


def test_our_own_api_keys_are_secrets() -> None:
    from agent_sdk.security.api_key_secrets import generate

    token, _ = generate()
    assert redactor.redact(f"AGENT_SDK_API_KEY={token} rest") == "AGENT_SDK_API_KEY=[SECRET] rest"


def test_checksums_against_values_computed_by_hand() -> None:
    assert checks.luhn_ok("79927398713") and not checks.luhn_ok("79927398710")
    assert checks.iban_ok("GB82WEST12345698765432") and not checks.iban_ok("GB82WEST12345698765433")
    assert not checks.iban_ok("XX82WEST12345698765432")
    assert checks.verhoeff_ok("2363") and not checks.verhoeff_ok("2364")
    assert checks.es_dni_ok("12345678", "Z") and not checks.es_dni_ok("12345678", "A")
    assert checks.es_dni_ok("X1234567", "L")
    assert checks.card_brand_ok("4" * 16) and not checks.card_brand_ok("1" * 16)


def test_redaction_is_idempotent() -> None:
    for row in load_corpus():
        once = redactor.redact(row["text"])
        assert redactor.redact(once) == once, row["text"]


def test_disabling_a_detector_keeps_its_findings() -> None:
    no_ip = Redactor.builtin(["ip"])
    assert no_ip.redact("from 10.1.2.3 mail a@b.io") == "from 10.1.2.3 mail [EMAIL]"
    nothing = Redactor.builtin(BUILTIN_NAMES)
    text = "from 10.1.2.3 mail a@b.io card 4111 1111 1111 1111"
    assert nothing.redact(text) is text


# -- JSON values ----------------------------------------------------------------------------------
def test_json_values_keep_their_structure_and_types() -> None:
    value = {
        "step": 3,
        "ok": True,
        "ratio": 0.5,
        "none": None,
        "text": "mail a@b.io",
        "calls": [{"arguments": {"to": "+44 20 7946 0958", "n": 4111111111111111}}],
        "a@b.io": "key is an address",
    }
    out = redactor.redact_value(value)
    assert out == {
        "step": 3,
        "ok": True,
        "ratio": 0.5,
        "none": None,
        "text": "mail [EMAIL]",
        "calls": [{"arguments": {"to": "[PHONE]", "n": 4111111111111111}}],
        "[EMAIL]": "key is an address",
    }
    assert value["text"] == "mail a@b.io"  # the input is not modified


def test_keys_that_redact_alike_are_kept_apart() -> None:
    out = redactor.redact_value({"a@b.io": 1, "c@d.io": 2, "[EMAIL]": 0})
    assert out == {"[EMAIL]#2": 1, "[EMAIL]#3": 2, "[EMAIL]": 0}


def test_an_unchanged_value_is_returned_as_is() -> None:
    value = {"a": ["plain", {"b": "text"}], "n": 1}
    assert redactor.redact_value(value) is value


def test_a_value_nested_too_deep_is_refused_not_stored_unredacted() -> None:
    value: Any = "a@b.io"
    for _ in range(MAX_DEPTH + 1):
        value = [value]
    with pytest.raises(InvalidInput, match="nested"):
        redactor.redact_value(value)


# -- hostile text ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "1" * 300_000,
        "1 " * 150_000,
        "@" * 300_000,
        "a@" * 150_000,
        "a" * 300_000,
        ":" * 300_000,
        "1." * 150_000,
        "1:" * 150_000,
        "password=" * 30_000,
        "Bearer " * 40_000,
        "AKIA" * 75_000,
        "+(" * 150_000,
        "DE89 " * 60_000,
    ],
    ids=lambda t: repr(t[:12]),
)
def test_pathological_text_is_scanned_in_linear_time(text: str) -> None:
    started = time.perf_counter()
    redactor.redact(text)
    # A quadratic scan of 300 kB takes minutes; a linear one well under a second when quiet.
    assert time.perf_counter() - started < 30


def test_odd_unicode_survives_and_is_still_redacted() -> None:
    text = "ünïcødé 😀 mail jöhn@exämple.de \x00 \u202e card 4111 1111 1111 1111 \udcff"
    out = redactor.redact(text)
    assert out == "ünïcødé 😀 mail [EMAIL] \x00 \u202e card [CARD] \udcff"


def test_non_ascii_digits_are_not_read_as_numbers() -> None:
    # Arabic-Indic digits shaped like a card number: the checksums read ASCII digits only.
    text = "٤١١١ ١١١١ ١١١١ ١١١١"
    assert redactor.redact(text) == text


def test_prose_without_digits_or_at_signs_is_returned_untouched_and_fast() -> None:
    prose = "The agent summarised the customer's request and drafted a reply. " * 2000
    assert redactor.redact(prose) is prose
