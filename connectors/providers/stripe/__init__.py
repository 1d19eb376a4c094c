"""Stripe Invoicing as an invoicing source (REST API v1, read-only)."""
