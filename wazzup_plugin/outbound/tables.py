"""Tables of the outbound flow (outbox, idempotency keys, rate limit)."""


def define_outbound_tables(metadata, table) -> dict:
    return {}
