"""USCC (GB 32100-2015), its organization code (GB 11714) and resident ID
(GB 11643) validation."""

import logging

import pytest
import strawberry
from strawberry.schema.config import StrawberryConfig

from core.codes import (
    InvalidCode,
    complete_uscc,
    compose_uscc,
    division_of,
    has_valid_organization_code,
    organization_code_check_character,
    organization_code_problem,
    resident_id_check_digit,
    uscc_check_character,
    validate_resident_id,
    validate_uscc,
)
from core.scalars import SCALAR_MAP, USCC, parse_uscc

PUBLISHED_VALID_USCCS = [
    "91110000600037341L",
    "91310110666007217T",
    "91440300568520498A",
    "91340600MA2PBM9HXD",
    "121200004013590816",
    "91441300195971850Y",
    "91441900708017879M",
]


@pytest.mark.parametrize("code", PUBLISHED_VALID_USCCS)
def test_published_codes_are_valid(code):
    assert validate_uscc(code) == code
    assert uscc_check_character(code[:17]) == code[17]


@pytest.mark.parametrize("code", PUBLISHED_VALID_USCCS)
def test_published_codes_carry_a_valid_organization_code(code):
    assert organization_code_problem(code) is None and has_valid_organization_code(code)
    assert organization_code_check_character(code[8:16]) == code[16]


@pytest.mark.parametrize(("body", "check"), [
    ("60003734", "1"),
    ("MA2PBM9H", "X"),  # 11 - sum mod 11 = 10
    ("19597185", "0"),  # 11 - sum mod 11 = 11
    ("00000000", "0"),
    ("ZZZZZZZZ", "3"),  # Z is 35 (a USCC never holds Z): 11 - 48 * 35 mod 11
])
def test_organization_code_check_character(body, check):
    assert organization_code_check_character(body) == check


def test_organization_code_body_must_be_eight_alphanumerics():
    with pytest.raises(InvalidCode, match="8 characters"):
        organization_code_check_character("6000373")
    with pytest.raises(InvalidCode, match="8 characters"):
        organization_code_check_character("6000373-")


def test_a_failing_organization_code_is_not_a_failing_uscc():
    code = complete_uscc("91441300195971857")  # organization code check 7, should be 0
    assert validate_uscc(code) == code
    assert not has_valid_organization_code(code)
    assert organization_code_problem(code) == (
        "organization code 195971857 (positions 9-17) has check character '7', "
        "expected '0' (GB 11714)")


def test_composed_codes_pass_both_checks():
    code = compose_uscc("91441300", "19597185")
    assert code == "91441300195971850Y"
    assert validate_uscc(code) == code and has_valid_organization_code(code)
    with pytest.raises(InvalidCode, match="outside the GB 32100-2015 alphabet"):
        compose_uscc("91441300", "1959718I")


@strawberry.type
class _Query:
    @strawberry.field
    def echo(self, uscc: USCC) -> USCC:
        return uscc


_SCHEMA = strawberry.Schema(_Query, config=StrawberryConfig(scalar_map=SCALAR_MAP))
LEGACY = complete_uscc("91441300195971857")


def _warnings(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "gateway.codes" and r.levelno == logging.WARNING]


def test_the_scalar_accepts_a_legacy_organization_code_with_a_warning(caplog):
    caplog.set_level(logging.WARNING, logger="gateway.codes")
    assert parse_uscc(LEGACY.lower()) == LEGACY
    (warning,) = _warnings(caplog)
    assert LEGACY in warning.getMessage()
    assert "expected '0' (GB 11714)" in warning.getMessage()


@pytest.mark.parametrize("as_literal", [False, True])
def test_a_query_with_a_legacy_organization_code_is_answered(caplog, as_literal):
    caplog.set_level(logging.WARNING, logger="gateway.codes")
    if as_literal:
        result = _SCHEMA.execute_sync(f'{{ echo(uscc: "{LEGACY}") }}')
    else:
        result = _SCHEMA.execute_sync("query($u: USCC!) { echo(uscc: $u) }",
                                      variable_values={"u": LEGACY})
    assert result.errors is None and result.data == {"echo": LEGACY}
    assert _warnings(caplog) and all(LEGACY in r.getMessage() for r in _warnings(caplog))


def test_valid_and_invalid_codes_log_no_organization_code_warning(caplog):
    caplog.set_level(logging.WARNING, logger="gateway.codes")
    assert _SCHEMA.execute_sync('{ echo(uscc: "91441300195971850Y") }').errors is None
    result = _SCHEMA.execute_sync('{ echo(uscc: "91110000600037341N") }')
    assert "expected 'L'" in result.errors[0].message
    assert _warnings(caplog) == []


def test_lower_case_and_spaces_are_normalized():
    assert validate_uscc(" 91340600ma2pbm9hxd ") == "91340600MA2PBM9HXD"


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("91110000600037341N", "has check character 'N', expected 'L'"),
        ("914413001959718754", "expected 'G'"),
        ("91110000600037341", "must have 18 characters, not 17"),
        ("9111000060003734IL", "contains 'I'"),
        ("91110000600O37341L", "contains 'O'"),
        ("91AB0000600037341L", "characters 3-8 must be a division code"),
    ],
)
def test_invalid_codes_say_what_is_wrong(code, message):
    with pytest.raises(InvalidCode, match=message.replace("(", r"\(")):
        validate_uscc(code)


def test_division_code():
    assert division_of("91441300195971850Y") == "441300"


@pytest.mark.parametrize("code", ["11010519491231002X", "440524188001010014"])
def test_published_resident_ids_are_valid(code):
    assert validate_resident_id(code) == code
    assert resident_id_check_digit(code[:17]) == code[17]


def test_lower_case_x_is_accepted():
    assert validate_resident_id("11010519491231002x") == "11010519491231002X"


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("110105194912310021", "has check digit '1', expected 'X'"),
        ("11010519491231002", "17 digits and a check digit"),
        ("1101051949123100XX", "17 digits and a check digit"),
        ("110105194913310028", "no valid birth date"),
    ],
)
def test_invalid_resident_ids(code, message):
    with pytest.raises(InvalidCode, match=message):
        validate_resident_id(code)
