"""Card-transaction simulator reproducing the reference fraud dataset (see fraud-protocol.md, section 1)."""
