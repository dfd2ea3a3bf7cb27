"""The gateway's record types: what connectors map legacy rows into, one
module per department (``base`` holds what they share).

Each module declares its ``RecordType``s beside its record classes; a
connector serves some of them (``connectors.base.Connector``), and the
GraphQL ``Entity``/``Person`` fields are derived from those declarations.
"""
