"""Fixtures for the hsm area."""
