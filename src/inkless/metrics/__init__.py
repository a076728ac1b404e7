"""Measuring the migration: the procedure catalogue, roll-ups, dashboards, aggregates and OpenMetrics."""
