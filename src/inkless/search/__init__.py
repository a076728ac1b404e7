"""Finding things: the keyed gram index, queries with filters and pagination, unread counts."""
