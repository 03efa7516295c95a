"""The built-in detectors of PII redaction: what each finds, and how it tells a hit from a
look-alike.

Each detector is a precompiled regex for the *shape* (every quantifier bounded, so a scan is
linear in the text whatever it holds) and, where a shape is not enough, an ``accept`` function
with the *rules* (checksums, number ranges, context words; see
:mod:`agent_sdk.governance.redact_checks`). They run in the order of :data:`BUILTIN_NAMES`:
credentials first (a token may contain an e-mail-like or digit-heavy run), phone numbers last
(the loosest shape, after everything more specific has been replaced).

Two things keep them fast. Each detector names the cheapest tests that rule it out (too few
digits, a missing ``@`` or prefix), so most text never reaches its regex. And the regexes
start with their first character, not with a look-behind: the regex engine then skips ahead
to the next possible start (a digit, an ``@``) instead of trying every position; the
"not glued to a word" check comes right after that first character.

Digits are ASCII digits: the checksums read them as such.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass

from agent_sdk.api_key_format import ID_LENGTH, PREFIX
from agent_sdk.governance import redact_checks as checks

# (start, end) in the text of what to replace, from a match; None: not a finding.
Accept = Callable[[re.Match[str]], tuple[int, int] | None]


@dataclass(frozen=True)
class Detector:
    name: str  # the built-in or custom pattern name it belongs to (what policies enable/disable)
    placeholder: str
    pattern: re.Pattern[str]
    accept: Accept | None = None  # None: every match is a finding, replaced whole
    # Cheap tests that rule the detector out before its regex runs: the text has fewer ASCII
    # digits than ``min_digits``, or lacks every string of one of the ``requires`` groups. The
    # first group is checked for every text, so it holds single characters where it can.
    min_digits: int = 0
    requires: tuple[tuple[str, ...], ...] = ()


def _before(m: re.Match[str], width: int = 32) -> str:
    return m.string[max(0, m.start() - width) : m.start()].lower()


def _whole_if(ok: Callable[[re.Match[str]], bool]) -> Accept:
    def accept(m: re.Match[str]) -> tuple[int, int] | None:
        return m.span() if ok(m) else None

    return accept


def _group(name: str, ok: Callable[[str], bool] | None = None) -> Accept:
    """Replace only group ``name`` (the password of a URL, the value of ``api_key=``)."""

    def accept(m: re.Match[str]) -> tuple[int, int] | None:
        if ok is not None and not ok(m.group(name)):
            return None
        return m.span(name)

    return accept


def _cuts(s: str, seps: str) -> list[int]:
    """The lengths to try for a candidate that may have run on into the next number: the
    whole, then cut at each separator from the right ("020 7946 0958 2" -> "020 7946 0958")."""
    return [len(s)] + [i for i in range(len(s) - 1, 0, -1) if s[i] in seps]


_PLACEHOLDER_SHAPE = re.compile(r"\[[A-Z][A-Z0-9_]{0,39}\]")


def looks_random(token: str) -> bool:
    """A credential rather than a word: letters mixed with digits or symbols (or very long),
    not a placeholder, not a mask such as ``********``."""
    if _PLACEHOLDER_SHAPE.fullmatch(token) or len(set(token)) < 4:
        return False
    digits = sum(c.isdigit() for c in token)
    letters = sum(c.isalpha() for c in token)
    symbols = len(token) - digits - letters
    return (digits >= 1 and letters >= 2) or symbols >= 2 or len(token) >= 24


def _mixed(token: str) -> bool:
    """Upper case, lower case and digits, as random base62 keys have ("sk-learn-helpers" has
    not)."""
    return (
        any(c.isupper() for c in token)
        and any(c.islower() for c in token)
        and any(c.isdigit() for c in token)
    )


# -- credentials ----------------------------------------------------------------------------------
_BEARER = re.compile(
    r"[Bb](?<!\w[Bb])(?:earer|EARER)[ \t]{1,4}(?P<tok>[A-Za-z0-9\-._~+/]{8,4096}=*)"
    r"(?![A-Za-z0-9\-._~+/=])"
)


def _bearer_ok(m: re.Match[str]) -> tuple[int, int] | None:
    token = m.group("tok")
    if _PLACEHOLDER_SHAPE.fullmatch(token):
        return None
    # After "Authorization:" anything is a credential; in prose ("bearer instruments") only a
    # token that looks random is.
    if "authorization" not in _before(m, 24) and not looks_random(token):
        return None
    return m.span("tok")


_SECRET_KEYWORDS = (
    r"api[_-]?key|apikey|access[_-]?key|secret(?:[_-]?key)?|client[_-]?secret|password|passwd"
    r"|pwd|passphrase|auth[_-]?token|access[_-]?token|refresh[_-]?token|token|private[_-]?key"
)
# Found from the ":" or "=" (a case-insensitive alternation of keywords would be tried at every
# position, a hundred times slower); the name before it is checked by _assigned_ok.
_ASSIGNMENT = re.compile(r"[:=][ \t]{0,3}[\"']?(?P<tok>[^\s\"',;<>(){}\[\]]{6,512})")
_SECRET_NAME = re.compile(
    rf"(?i)(?<![a-z])(?:{_SECRET_KEYWORDS})(?:[_-][a-z0-9]{{1,20}}){{0,2}}[\"']?[ \t]{{0,3}}$"
)


def _assigned_ok(m: re.Match[str]) -> tuple[int, int] | None:
    name = m.string[max(0, m.start() - 64) : m.start()]
    if _SECRET_NAME.search(name) is None or not looks_random(m.group("tok")):
        return None
    return m.span("tok")


_KEYWORD_HINTS = tuple(
    v for w in ("key", "secret", "pass", "pwd", "token") for v in (w, w.upper(), w.title())
)

# (regex, accept, requires) of the "secret" family.
SECRET_PATTERNS: tuple[tuple[re.Pattern[str], Accept | None, tuple[tuple[str, ...], ...]], ...] = (
    # PEM private keys, whole blocks.
    (
        re.compile(
            r"-----BEGIN [A-Z ]{0,24}PRIVATE KEY-----[\s\S]{0,16384}?-----END [A-Z ]{0,24}"
            r"PRIVATE KEY-----"
        ),
        None,
        (("-----BEGIN",), ("PRIVATE KEY",)),
    ),
    # HTTP Basic credentials.
    (
        re.compile(r"(?i)authorization:[ \t]{0,4}basic[ \t]{1,4}(?P<tok>[A-Za-z0-9+/]{6,4096}=*)"),
        _group("tok"),
        ((":",), ("asic", "ASIC")),
    ),
    # agent-sdk API keys (asdk_<16 id>_<secret+checksum>), or any long asdk_ run (a mangled
    # paste): the families the audit log scrubs too.
    (
        re.compile(
            rf"{PREFIX}(?<![0-9A-Za-z]{PREFIX})"
            rf"(?:[0-9A-Za-z]{{{ID_LENGTH}}}_[0-9A-Za-z]{{8,64}}|[0-9A-Za-z_]{{24,128}})"
        ),
        None,
        ((PREFIX,),),
    ),
    # JWTs: base64url of '{"' starts with "eyJ".
    (
        re.compile(
            r"eyJ(?<!\weyJ)[A-Za-z0-9_-]{4,4096}\.[A-Za-z0-9_-]{4,16384}\.[A-Za-z0-9_-]{0,4096}"
        ),
        None,
        (("eyJ",),),
    ),
    # AWS access key ids (long-term AKIA, temporary ASIA); the secret half is caught by the
    # assignment rule below (aws_secret_access_key=...).
    (re.compile(r"A(?<!\wA)(?:KIA|SIA)[A-Z0-9]{16}\b"), None, (("AKIA", "ASIA"),)),
    # GitHub tokens (classic prefixes and fine-grained PATs).
    (
        re.compile(r"g(?<!\wg)(?:h[pousr]_[A-Za-z0-9]{36,251}|ithub_pat_[A-Za-z0-9_]{22,255})\b"),
        None,
        (("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),),
    ),
    # Slack tokens and incoming-webhook URLs.
    (
        re.compile(
            r"xox(?<!\wxox)[abposr]-[A-Za-z0-9-]{10,250}"
            r"|https://hooks\.slack\.com/services/[A-Za-z0-9/_-]{20,200}"
        ),
        None,
        (("xox", "hooks.slack.com"),),
    ),
    # OpenAI / Anthropic style (sk-..., sk-proj-..., sk-ant-...).
    (
        re.compile(r"sk-(?<!\wsk-)[A-Za-z0-9_-]{20,250}"),
        _whole_if(lambda m: _mixed(m.group())),
        (("sk-",),),
    ),
    # Stripe secret and restricted keys.
    (
        re.compile(r"[sr]k_(?<!\w[sr]k_)(?:live|test)_[A-Za-z0-9]{16,250}"),
        None,
        (("sk_", "rk_"),),
    ),
    # Google API keys.
    (re.compile(r"AIza(?<!\wAIza)[0-9A-Za-z_-]{35}\b"), None, (("AIza",),)),
    # Credentials in URLs: scheme://user:password@host.
    (
        re.compile(r"://[^\s:/@]{0,128}:(?P<tok>[^\s/@]{1,256})@"),
        _group("tok"),
        (("@",), ("://",)),
    ),
    # Assignments: password=..., "api_key": "...", AWS_SECRET_ACCESS_KEY=...
    (_ASSIGNMENT, _assigned_ok, ((":", "="), _KEYWORD_HINTS)),
)


# -- e-mail ---------------------------------------------------------------------------------------
# Found from the "@" (which the regex engine finds at memchr speed); the local part is then read
# backwards from it by _email_ok, at most 64 characters as RFC 5321 allows.
_EMAIL = re.compile(r"@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.){1,8}[^\W\d_]{2,24}(?![\w-]|\.[^\W\d_])")
_LOCAL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.%+-_")
# "icon@2x.png" is a file name: image and asset extensions are not top-level domains people use.
_FILE_TLDS = frozenset("png jpg jpeg gif svg webp bmp ico css js map woff woff2".split())


def _email_ok(m: re.Match[str]) -> tuple[int, int] | None:
    text, at = m.string, m.start()
    start = at
    while (
        start > 0 and at - start < 65 and (text[start - 1] in _LOCAL or text[start - 1].isalnum())
    ):
        start -= 1
    if start == at or at - start > 64 or text[start] == ".":
        return None
    if m.group().rsplit(".", 1)[1].lower() in _FILE_TLDS:
        return None
    return start, m.end()


# -- bank accounts and cards ----------------------------------------------------------------------
# Found from its check digits, with the country code checked behind them.
_IBAN = re.compile(
    r"(?a)\d(?<=[A-Za-z][A-Za-z]\d)(?<!\w[A-Za-z][A-Za-z]\d)\d(?: ?[A-Za-z0-9]){10,32}(?!\w)"
)


def _iban_ok(m: re.Match[str]) -> tuple[int, int] | None:
    """The IBAN at the start of the candidate, exactly as long as its country says (the regex
    may have run on into the words after it)."""
    begin = m.start() - 2
    s = m.string[begin : m.end()]
    want = checks.IBAN_LENGTHS.get(s[:2].upper())
    if want is None:
        return None
    chars: list[str] = []
    end = 0
    for i, ch in enumerate(s):
        if ch != " ":
            chars.append(ch)
            if len(chars) == want:
                end = i + 1
                break
    if not end or (end < len(s) and s[end] != " "):
        return None
    return (begin, begin + end) if checks.iban_ok("".join(chars)) else None


_CARD = re.compile(r"(?a)\d(?<![\w.+/$€£-]\d)(?:[ -]?\d){12,22}(?!\w|[.,-]\d)")


def _card_ok(m: re.Match[str]) -> tuple[int, int] | None:
    s = m.group()
    for end in _cuts(s, " -"):
        part = s[:end]
        digits = part.replace(" ", "").replace("-", "")
        if not 13 <= len(digits) <= 19 or not _card_grouping_ok(part):
            continue
        if checks.card_brand_ok(digits) and checks.luhn_ok(digits):
            return m.start(), m.start() + end
    return None


def _card_grouping_ok(part: str) -> bool:
    """Bare digits, or one kind of separator with groups as cards print them (4-4-4-4,
    4-6-5, ...): a first group of four and no group shorter than three."""
    seps = {c for c in part if c in " -"}
    if not seps:
        return True
    if len(seps) > 1:
        return False
    groups = part.split(seps.pop())
    return len(groups[0]) == 4 and all(3 <= len(g) <= 6 for g in groups)


# -- national identifiers -------------------------------------------------------------------------
_SSN = re.compile(r"(?a)(\d(?<![\w-]\d)\d\d)([- ]?)(\d\d)\2(\d{4})(?![\w-])")


def _ssn_ok(m: re.Match[str]) -> bool:
    if not checks.us_ssn_ok(m.group(1), m.group(3), m.group(4)):
        return False
    # Nine bare digits are an SSN only where the text says so.
    return bool(m.group(2)) or re.search(r"ssn|social security", _before(m)) is not None


_NINO = re.compile(r"(?a)([A-Z](?<!\w[A-Z])[A-Z]) ?\d\d ?\d\d ?\d\d ?[A-D](?!\w)")
_ES_DNI = re.compile(r"(?a)(\d(?<![\w-]\d)\d{7})-?([A-Za-z])(?!\w)")
_ES_NIE = re.compile(r"(?a)([XYZ](?<![\w-][XYZ])-?\d{7})-?([A-Za-z])(?!\w)")
_AADHAAR = re.compile(r"(?a)([2-9](?<![\w-][2-9])\d{3})([ -]?)(\d{4})\2(\d{4})(?![\w-])")


def _aadhaar_ok(m: re.Match[str]) -> bool:
    if not checks.aadhaar_ok(m.group(1) + m.group(3) + m.group(4)):
        return False
    return bool(m.group(2)) or re.search(r"aadhaar|uidai", _before(m)) is not None


# -- network addresses ----------------------------------------------------------------------------
# Found from its first colon; the group before it is read backwards by _ipv6_ok.
_IPV6 = re.compile(
    r"(?a):(?:[0-9A-Fa-f]{0,4}:){1,6}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?"
    r"(?![\w:]|\.\d)"
)
_HEX = frozenset("0123456789abcdefABCDEF")
_IPV4 = re.compile(r"(?a)\d(?<![\w.]\d)\d{0,2}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?!\w|\.\d)")
# "version 1.2.3.4", "section 4.5.3.1", "OID 1.3.6.1": dotted numbers that are not addresses.
_VERSION_WORDS = re.compile(
    r"(?:\b(?:version|release|build|ver|rev|section|sec|chapter|clause|oid)\.?|§)\s{0,3}$"
)


def _ipv6_ok(m: re.Match[str]) -> tuple[int, int] | None:
    text = m.string
    start = m.start()
    while start > 0 and m.start() - start < 4 and text[start - 1] in _HEX:
        start -= 1
    if start > 0 and (text[start - 1].isalnum() or text[start - 1] in "_:.%"):
        return None  # part of a longer word or address
    s = text[start : m.end()]
    if not any(c.isdigit() for c in s):
        return None  # "::", or "a::b" in code
    try:
        ipaddress.IPv6Address(s)
    except ValueError:
        return None
    return start, m.end()


def _ipv4_ok(m: re.Match[str]) -> bool:
    try:
        ipaddress.IPv4Address(m.group())
    except ValueError:
        return False  # 999.1.1.1, leading zeros
    return _VERSION_WORDS.search(_before(m, 16)) is None  # "version 1.2.3.4"


# -- phone numbers --------------------------------------------------------------------------------
_PHONE = re.compile(r"(?a)[+(\d](?<![\w+@/.:=#$%&€£-].)[\d ().-]{5,24}\d(?![\w@/%]|[.:,-]\d)")
_PHONE_WORDS = re.compile(r"\b(?:tel|cell|call|fax|sms|dial|mob)\b|phone|mobile|whatsapp")


def _phone_ok(m: re.Match[str]) -> tuple[int, int] | None:
    s = m.group()
    context = _PHONE_WORDS.search(_before(m)) is not None
    for end in _cuts(s, " .-"):
        part = s[:end].rstrip(" .-(")
        if part.count("(") != part.count(")"):
            continue
        if checks.phone_shape_ok(part, context):
            return m.start(), m.start() + len(part)
    return None


def _detectors() -> dict[str, tuple[Detector, ...]]:
    def national(pattern: re.Pattern[str], ok: Callable[[re.Match[str]], bool], n: int) -> Detector:
        return Detector("national_id", "[NATIONAL_ID]", pattern, _whole_if(ok), min_digits=n)

    def es_id_ok(m: re.Match[str]) -> bool:
        return checks.es_dni_ok(m.group(1).replace("-", ""), m.group(2))

    return {
        "bearer_token": (
            Detector(
                "bearer_token",
                "[BEARER_TOKEN]",
                _BEARER,
                _bearer_ok,
                requires=(("earer", "EARER"),),
            ),
        ),
        "secret": tuple(
            Detector("secret", "[SECRET]", p, accept, requires=requires)
            for p, accept, requires in SECRET_PATTERNS
        ),
        "email": (Detector("email", "[EMAIL]", _EMAIL, _email_ok, requires=(("@",),)),),
        "iban": (Detector("iban", "[IBAN]", _IBAN, _iban_ok, min_digits=4),),
        "card": (Detector("card", "[CARD]", _CARD, _card_ok, min_digits=13),),
        "national_id": (
            national(_SSN, _ssn_ok, 9),
            national(_NINO, lambda m: checks.uk_nino_ok(m.group(1)), 6),
            national(_ES_DNI, es_id_ok, 8),
            national(_ES_NIE, es_id_ok, 7),
            national(_AADHAAR, _aadhaar_ok, 12),
        ),
        "ip": (
            Detector("ip", "[IP]", _IPV6, _ipv6_ok, min_digits=1, requires=((":",),)),
            Detector("ip", "[IP]", _IPV4, _whole_if(_ipv4_ok), min_digits=4, requires=((".",),)),
        ),
        "phone": (Detector("phone", "[PHONE]", _PHONE, _phone_ok, min_digits=7),),
    }


BUILTINS: dict[str, tuple[Detector, ...]] = _detectors()
BUILTIN_NAMES: tuple[str, ...] = tuple(BUILTINS)
# The placeholder of each built-in, for documentation and for the check that a custom pattern
# does not match a placeholder (which would make redaction change its own output).
BUILTIN_PLACEHOLDERS: dict[str, str] = {name: ds[0].placeholder for name, ds in BUILTINS.items()}
DESCRIPTIONS: dict[str, str] = {
    "bearer_token": "the credential after 'Bearer' (HTTP Authorization headers, logs)",
    "secret": "API-key-shaped secrets: agent-sdk keys, AWS access key ids, GitHub, Slack, "
    "OpenAI/Anthropic, Stripe and Google keys, JWTs, PEM private keys, HTTP Basic credentials, "
    "passwords in URLs, and values assigned to password/secret/token/api_key names",
    "email": "e-mail addresses",
    "iban": "IBANs (country length and mod-97 checked)",
    "card": "payment card numbers, 13-19 digits (issuer range and Luhn checked)",
    "national_id": "US SSN (invalid ranges excluded), UK NINO, Spanish DNI/NIE (control "
    "letter), Indian Aadhaar (Verhoeff)",
    "ip": "IPv4 and IPv6 addresses (validated with ipaddress)",
    "phone": "phone numbers: +international, North American, and national formats with a trunk 0",
}
