"""Code scalars: invalid codes are rejected while the request is validated,
before any resolver runs or any source is touched.

``USCC`` and ``ResidentId`` are the Python types used in annotations;
``SCALAR_MAP`` gives the schema their GraphQL definitions.
"""

from __future__ import annotations

from typing import NewType

import strawberry

from gateway.codes import validate_resident_id, validate_uscc

USCC = NewType("USCC", str)
ResidentId = NewType("ResidentId", str)

SCALAR_MAP = {
    USCC: strawberry.scalar(
        name="USCC",
        description=(
            "Unified social credit code (统一社会信用代码), GB 32100-2015: 18 characters "
            "from 0-9 and A-Y without I, O, Z, S, V, the last a check character."
        ),
        serialize=str,
        parse_value=validate_uscc,
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
