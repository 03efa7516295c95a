"""The checks that turn a regex hit into a finding: checksums and the rules of each identifier.

A regex only says "this has the shape of a card number"; most 16-digit strings are order ids,
and most ``AA00 ...`` strings are not bank accounts. These functions carry the knowledge that
separates them (check digits, number ranges, country lengths), so the detectors in
:mod:`agent_sdk.governance.redact_patterns` stay simple and a false positive costs a checksum,
not a broken order number in a stored transcript.
"""

from __future__ import annotations

# -- payment cards --------------------------------------------------------------------------------


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check of ``digits``: every card number passes it, and a random digit
    string only one time in ten."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_brand_ok(digits: str) -> bool:
    """Whether ``digits`` starts like an issued card and has a length its network uses.

    Issuer ranges cut false positives further than Luhn alone: snowflake ids and millisecond
    timestamps start with 1, and no card network issues numbers there.
    """
    n = len(digits)
    first = digits[0]
    if first == "4":  # Visa
        return n in (13, 16, 19)
    if first == "2":  # Mastercard's 2-series
        return n == 16 and 2221 <= int(digits[:4]) <= 2720
    if first == "3":  # Amex 34/37 (15), Diners 30/36/38/39 (14-16), JCB 35 (16-19)
        two = digits[:2]
        if two in ("34", "37"):
            return n == 15
        if two in ("30", "36", "38", "39"):
            return 14 <= n <= 16
        return two == "35" and 16 <= n <= 19
    if first in "56":  # Mastercard, Maestro, Discover, UnionPay, RuPay
        return 16 <= n <= 19
    return False


# -- bank accounts --------------------------------------------------------------------------------

# IBAN length per country, from the SWIFT IBAN registry (countries that issue IBANs).
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22,
    "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23,
    "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21,
    "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27,
    "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29,
    "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24,
    "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24,
    "XK": 20,
}  # fmt: skip


def iban_ok(iban: str) -> bool:
    """ISO 13616: the country's length, then mod 97 of the rearranged number is 1 (which catches
    every single-character error and almost every swap)."""
    iban = iban.upper()
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban[2:4].isdigit():
        return False
    rearranged = iban[4:] + iban[:4]
    remainder = 0
    for ch in rearranged:
        if "0" <= ch <= "9":
            remainder = (remainder * 10 + ord(ch) - 48) % 97
        elif "A" <= ch <= "Z":
            remainder = (remainder * 100 + ord(ch) - 55) % 97
        else:
            return False
    return remainder == 1


# -- national identifiers -------------------------------------------------------------------------


def us_ssn_ok(area: str, group: str, serial: str) -> bool:
    """A US Social Security number the SSA could have issued: area 000, 666 and 900-999, group
    00 and serial 0000 never are."""
    a = int(area)
    return a != 0 and a != 666 and a < 900 and group != "00" and serial != "0000"


# First letters never used, second letters never used, and prefixes withheld (HMRC).
_NINO_BAD_FIRST = frozenset("DFIQUV")
_NINO_BAD_SECOND = frozenset("DFIOQUV")
_NINO_BAD_PREFIX = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})


def uk_nino_ok(prefix: str) -> bool:
    """A UK National Insurance number prefix HMRC allocates (the digits carry no check)."""
    p = prefix.upper()
    return (
        p[0] not in _NINO_BAD_FIRST and p[1] not in _NINO_BAD_SECOND and p not in _NINO_BAD_PREFIX
    )


_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def es_dni_ok(number: str, letter: str) -> bool:
    """A Spanish DNI (8 digits) or NIE (X/Y/Z + 7 digits) and its control letter (mod 23)."""
    head = number[0].upper()
    if head in "XYZ":
        number = str("XYZ".index(head)) + number[1:]
    return number.isdigit() and _DNI_LETTERS[int(number) % 23] == letter.upper()


# Verhoeff's dihedral-group tables: the check digit of Aadhaar numbers.
_V_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9), (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6), (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8), (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2), (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4), (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)  # fmt: skip
_V_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9), (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2), (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0), (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5), (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)  # fmt: skip


def verhoeff_ok(digits: str) -> bool:
    check = 0
    for i, ch in enumerate(reversed(digits)):
        check = _V_D[check][_V_P[i % 8][ord(ch) - 48]]
    return check == 0


def aadhaar_ok(digits: str) -> bool:
    """An Indian Aadhaar number: 12 digits, never starting with 0 or 1, Verhoeff-checked."""
    return len(digits) == 12 and digits[0] not in "01" and verhoeff_ok(digits)


# -- phone numbers --------------------------------------------------------------------------------


def phone_shape_ok(candidate: str, context: bool) -> bool:
    """Whether a run of digits and separators is written the way phone numbers are.

    Accepted: ``+`` followed by 8-15 digits (E.164, any grouping); ``00`` then 10-15 digits with
    separators; North American ``(555) 123-4567`` / ``555-123-4567`` with valid area and
    exchange codes; and national numbers with a trunk ``0`` (``020 7946 0958``,
    ``06 12 34 56 78``) of 9-12 digits in groups of two or more. With a word such as "phone" or
    "call" just before it (``context``), also a bare run of 7-15 digits or ``123-4567``.
    Everything else (dates, ISBNs, versions, ids) is left alone.
    """
    groups = _groups(candidate)
    if groups is None:
        return False
    digits = "".join(groups)
    n = len(digits)
    if candidate.startswith("+"):
        return 8 <= n <= 15
    if candidate.startswith("00") and len(groups) > 1 and digits[2] != "0":
        return 12 <= n <= 17  # 00, a country code (never starting with 0), 10-15 digits
    if context and (len(groups) == 1 or [len(g) for g in groups] == [3, 4]):
        return 7 <= n <= 15
    if len(groups) == 1:
        return False  # a bare number: an id as often as a phone
    sizes = [len(g) for g in groups]
    nanp = sizes[1:] if sizes[0] == 1 and groups[0] == "1" else sizes
    if nanp == [3, 3, 4] and digits[0] != "0":
        area, exchange = digits[-10], digits[-7]
        return area not in "01" and exchange not in "01"
    # A trunk prefix: a national number (European style), in groups of two or more digits
    # with one kind of separator ("020 7946 0958", "06-12-34-56-78").
    # ("00" is the international prefix, never the start of a national number).
    if digits[0] != "0" or digits[1] == "0" or not 9 <= n <= 12 or min(sizes) < 2:
        return False
    if len(groups) > 6:
        return False
    return len({c for c in candidate if c in " .-"}) <= 1


def _groups(candidate: str) -> list[str] | None:
    """The digit groups of a candidate, or None when its separators are inconsistent (mixed
    dots and dashes, doubled separators): phone numbers are written with one kind."""
    text = candidate.lstrip("+")
    seps = {ch for ch in text if ch in ".-"}
    if len(seps) > 1:
        return None
    groups: list[str] = []
    current = []
    previous_sep = False
    for ch in text:
        if ch.isdigit():
            current.append(ch)
            previous_sep = False
            continue
        if ch in "()":
            if current:
                groups.append("".join(current))
                current = []
            continue
        if previous_sep:
            return None  # "12--34", "12 . 34"
        previous_sep = True
        if current:
            groups.append("".join(current))
            current = []
    if current:
        groups.append("".join(current))
    return groups or None
