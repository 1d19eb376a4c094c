"""Pennylane (Company API v2) as an accounting target."""
