"""Identity codes: the unified social credit code (GB 32100-2015) and the
resident identity number (GB 11643).

Validators return the normalized code or raise ``InvalidCode`` with a message
that says what is wrong; ``*_check_character`` helpers are used by the demo
data generator to build valid codes.
"""

from __future__ import annotations

import re

from gateway.errors import InvalidInput

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUES = {ch: i for i, ch in enumerate(USCC_ALPHABET)}
_USCC_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_ID_PATTERN = re.compile(r"^\d{17}[\dX]$")


class InvalidCode(InvalidInput, ValueError):
    """A code failed its format or check-character rule (safe to show the client)."""


def uscc_check_character(first17: str) -> str:
    """The 18th character of a USCC whose first 17 characters are given."""
    total = sum(_USCC_VALUES[ch] * w for ch, w in zip(first17, _USCC_WEIGHTS))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def complete_uscc(first17: str) -> str:
    """The USCC whose first 17 characters are ``first17`` (its check character added)."""
    return first17 + uscc_check_character(first17)


def validate_uscc(value: str) -> str:
    """Return ``value`` (upper-cased, stripped) if it is a valid USCC."""
    if not isinstance(value, str):
        raise InvalidCode("a unified social credit code must be a string")
    code = value.strip().upper()
    if len(code) != 18:
        raise InvalidCode(
            f"unified social credit code {value!r} must have 18 characters, not {len(code)}"
        )
    bad = sorted({ch for ch in code if ch not in _USCC_VALUES})
    if bad:
        raise InvalidCode(
            f"unified social credit code {value!r} contains {''.join(bad)!r}, "
            f"outside the GB 32100-2015 alphabet (digits and letters except I, O, Z, S, V)"
        )
    if not code[2:8].isdigit():
        raise InvalidCode(
            f"unified social credit code {value!r}: characters 3-8 must be a division code"
        )
    expected = uscc_check_character(code[:17])
    if code[17] != expected:
        raise InvalidCode(
            f"unified social credit code {value!r} has check character {code[17]!r}, "
            f"expected {expected!r}"
        )
    return code


def resident_id_check_digit(first17: str) -> str:
    """The 18th character of a resident identity number (ISO 7064 MOD 11-2)."""
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS))
    return _ID_CHECK[total % 11]


def validate_resident_id(value: str) -> str:
    """Return ``value`` (upper-cased, stripped) if it is a valid resident ID number."""
    if not isinstance(value, str):
        raise InvalidCode("a resident identity number must be a string")
    code = value.strip().upper()
    if not _ID_PATTERN.match(code):
        raise InvalidCode(
            f"resident identity number must be 17 digits and a check digit or X, got {value!r}"
        )
    month, day = int(code[10:12]), int(code[12:14])
    if not (1 <= month <= 12 and 1 <= day <= 31):
        raise InvalidCode(f"resident identity number {value!r} has no valid birth date")
    expected = resident_id_check_digit(code[:17])
    if code[17] != expected:
        raise InvalidCode(
            f"resident identity number {value!r} has check digit {code[17]!r}, "
            f"expected {expected!r}"
        )
    return code


def division_of(uscc: str) -> str:
    """The six-digit administrative division code inside a USCC."""
    return uscc[2:8]
