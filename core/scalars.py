"""Code scalars: invalid codes are rejected while the request is validated,
before any resolver runs or any source is touched.

A USCC whose embedded organization code (positions 9-17, GB 11714) fails its
own check is still accepted, as some legacy codes do: ``parse_uscc`` logs a
warning on ``core.codes`` naming the code (a USCC identifies an
organization and is public, not personal data).

``USCC`` and ``ResidentId`` are the Python types used in annotations;
``SCALAR_MAP`` gives the schema their GraphQL definitions.
"""

from __future__ import annotations

import logging
from typing import NewType

import strawberry

from core.codes import organization_code_problem, validate_resident_id, validate_uscc

log = logging.getLogger("gateway.codes")

USCC = NewType("USCC", str)
ResidentId = NewType("ResidentId", str)


def parse_uscc(value: str) -> str:
    """The normalized USCC (``InvalidCode`` if invalid); a warning, not a
    rejection, when only its organization code's check character is wrong."""
    code = validate_uscc(value)
    problem = organization_code_problem(code)
    if problem is not None:
        log.warning("USCC %s accepted with an invalid embedded organization code: %s",
                    code, problem)
    return code


SCALAR_MAP = {
    USCC: strawberry.scalar(
        name="USCC",
        description=(
            "Unified social credit code (统一社会信用代码), GB 32100-2015: 18 characters "
            "from 0-9 and A-Y without I, O, Z, S, V, the last a check character."
        ),
        serialize=str,
        parse_value=parse_uscc,
    ),
    ResidentId: strawberry.scalar(
        name="ResidentId",
        description=(
            "Resident identity number (居民身份证号码), GB 11643: 17 digits and a "
            "check digit (0-9 or X)."
        ),
        serialize=str,
        parse_value=validate_resident_id,
    ),
}
