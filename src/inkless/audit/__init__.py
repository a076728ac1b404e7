"""The tamper-evident audit log: an RFC 9162 Merkle tree with signed tree heads."""
