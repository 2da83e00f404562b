"""Shared fixtures: the real SoftHSM2 token and the real local vault, one module per area."""

pytest_plugins = [
    "tests.fixtures_hsm",
    "tests.fixtures_localvault",
    "tests.fixtures_evidence",
    "tests.fixtures_browser",
]
