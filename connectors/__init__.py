"""Connectors: one module per departmental database or partner endpoint.

``CONNECTORS`` maps the configuration's ``connector`` names to classes.
"""

from connectors.market import MarketRegulationConnector

CONNECTORS = {
    cls.kind: cls
    for cls in (
        MarketRegulationConnector,
    )
}
