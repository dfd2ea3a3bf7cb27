"""The catalog's authorization codes: which codes of subjects' authorization
records name which purpose and data category is data of the catalog,
validated strictly like the rest of it."""

from __future__ import annotations

import copy
import tomllib

import pytest

from core.errors import ConfigurationError
from gateway.catalog import DEFAULT_CATALOG, parse_catalog


@pytest.fixture(scope="module")
def raw_catalog():
    return tomllib.loads(DEFAULT_CATALOG.read_text(encoding="utf-8"))


def changed(raw, change):
    data = copy.deepcopy(raw)
    change(data)
    return data


def test_the_shipped_catalog_names_the_codes_of_financing_authorizations(raw_catalog):
    catalog = parse_catalog(raw_catalog)
    assert catalog.purposes["FINANCING"].authorization_codes == {"03"}
    codes = {c.id: c.authorization_codes for c in catalog.categories.values()}
    assert codes.items() >= {"tax": {"SW"}, "social_insurance": {"SB"},
                             "environment": {"HB"}}.items()
    used = {item.authorization_category for item in catalog.items.values()
            if item.authorization_category}
    assert used == set(catalog.categories)


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["items"]["tax_ratings"].update(authorization_category="housing"),
     "unknown authorization_category 'housing'"),
    (lambda d: d["purposes"]["FINANCING"].pop("authorization_codes"),
     r"authorized purpose\(s\) \['FINANCING'\] have no authorization_codes"),
    (lambda d: d["categories"]["environment"].update(authorization_codes=["SW"]),
     "authorization code 'SW' is already used by"),
    (lambda d: d["purposes"]["SUPERVISION"].update(authorization_codes=["03"]),
     "authorization code '03' is already used by"),
    (lambda d: d["categories"]["tax"].update(authorization_codes=[]),
     "must name at least one code"),
    (lambda d: d["categories"]["tax"].update(colour="red"), r"unknown key\(s\) \['colour'\]"),
    (lambda d: d["categories"]["tax"].pop("name"), "name"),
    (lambda d: d["categories"]["tax"].update(authorization_codes="SW"), "must be a list of strings"),
])
def test_wrong_authorization_codes_are_refused(raw_catalog, change, message):
    with pytest.raises(ConfigurationError, match=message):
        parse_catalog(changed(raw_catalog, change))
