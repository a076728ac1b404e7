"""Outgoing e-mail: settings, composition, the durable mail outbox and its SMTP transport."""
