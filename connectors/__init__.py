"""Connectors: one module per departmental database or partner endpoint
(``partner_http`` is the HTTP client partner connectors share).

``CONNECTORS`` maps the configuration's ``connector`` names to classes.
"""

from connectors.court import CourtConnector
from connectors.credit_office import CreditOfficeConnector
from connectors.dongguan import DongguanConnector
from connectors.environment import EnvironmentConnector
from connectors.hrss import SocialInsuranceConnector
from connectors.market import MarketRegulationConnector
from connectors.shenzhen import ShenzhenConnector
from connectors.tax import TaxConnector

CONNECTORS = {
    cls.kind: cls
    for cls in (
        MarketRegulationConnector,
        TaxConnector,
        CourtConnector,
        SocialInsuranceConnector,
        EnvironmentConnector,
        CreditOfficeConnector,
        ShenzhenConnector,
        DongguanConnector,
    )
}
