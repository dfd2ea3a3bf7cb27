"""USCC (GB 32100-2015) and resident ID (GB 11643) validation."""

import pytest

from gateway.codes import (
    InvalidCode,
    division_of,
    resident_id_check_digit,
    uscc_check_character,
    validate_resident_id,
    validate_uscc,
)

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
