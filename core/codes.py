"""Identity codes: the unified social credit code (GB 32100-2015), the
organization code inside it (GB 11714) and the resident identity number
(GB 11643).

Validators return the normalized code or raise ``InvalidCode`` with a message
that says what is wrong; ``*_check_character`` helpers are used by the demo
data generator to build valid codes.

Positions 9-17 of a USCC are a GB 11714 organization code whose last
character is its own check. Some legacy codes fail that check, so it is not
part of ``validate_uscc``: ``organization_code_problem`` says what is wrong
and the caller decides (the ``USCC`` scalar logs a warning and accepts the
code).
"""

from __future__ import annotations

import re

from core.errors import InvalidInput

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUES = {ch: i for i, ch in enumerate(USCC_ALPHABET)}
_USCC_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))
# GB 11714: the organization code's body (8 characters, 0-9 and A=10 ... Z=35)
# and its check character (11 - weighted sum mod 11; 10 is X, 11 is 0).
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
_ORG_BODY = re.compile(r"^[0-9A-Z]{8}$")

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


def organization_code_check_character(body: str) -> str:
    """The 9th character of a GB 11714 organization code whose first 8 are ``body``."""
    if not _ORG_BODY.match(body):
        raise InvalidCode(
            f"organization code body {body!r} must be 8 characters from 0-9 and A-Z"
        )
    check = 11 - sum(int(ch, 36) * w for ch, w in zip(body, _ORG_WEIGHTS)) % 11
    return {10: "X", 11: "0"}.get(check, str(check))


def organization_code_problem(uscc: str) -> str | None:
    """What is wrong with the organization code (positions 9-17) of ``uscc``, a
    code ``validate_uscc`` accepted; ``None`` when its check character is right."""
    body, check = uscc[8:16], uscc[16]
    expected = organization_code_check_character(body)
    if check == expected:
        return None
    return (f"organization code {uscc[8:17]} (positions 9-17) has check character "
            f"{check!r}, expected {expected!r} (GB 11714)")


def has_valid_organization_code(uscc: str) -> bool:
    """Whether positions 9-17 of ``uscc`` (a validated USCC) pass the GB 11714 check."""
    return organization_code_problem(uscc) is None


def compose_uscc(prefix: str, organization_body: str) -> str:
    """The USCC of registration authority, entity type and division ``prefix``
    (8 characters) and organization code body ``organization_body`` (8
    characters of the USCC alphabet): both check characters added, so the
    code passes both checks. (The organization code's check is a digit or X,
    always within the USCC alphabet.)"""
    if len(prefix) != 8 or len(organization_body) != 8:
        raise InvalidCode("a USCC is composed of an 8-character prefix and an 8-character body")
    bad = sorted({ch for ch in prefix + organization_body if ch not in _USCC_VALUES})
    if bad:
        raise InvalidCode(f"{''.join(bad)!r} outside the GB 32100-2015 alphabet")
    return complete_uscc(
        prefix + organization_body + organization_code_check_character(organization_body)
    )


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
