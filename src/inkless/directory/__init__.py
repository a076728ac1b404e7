"""Offices, users, roles, clearances (and later, peers)."""
