"""Tryton (JSON-RPC) as an invoicing source and an accounting target."""
