"""Fixtures for the localvault area."""
