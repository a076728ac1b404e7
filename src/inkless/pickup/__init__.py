"""Secure pickup: documents sent to an e-mail address are fetched from the node, never attached (脱PPAP)."""
