"""Tables of the inbound flow (parked items, quarantine)."""


def define_inbound_tables(metadata, table) -> dict:
    return {}
