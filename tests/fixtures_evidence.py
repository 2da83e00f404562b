"""Fixtures for the evidence area."""
