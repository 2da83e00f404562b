"""Shared fixtures: the real SoftHSM2 token and the real local vault, one module per area."""

pytest_plugins = [
    "tests.fixtures_hsm",
    "tests.fixtures_localvault",
    "tests.fixtures_evidence",
    "tests.fixtures_browser",
]

# Property-based tests: `make test` tries a few dozen inputs per reader, `make fuzz` hundreds.
# No example database: a failing input is printed, and kept as an explicit test.
import os  # noqa: E402

from hypothesis import HealthCheck, settings  # noqa: E402

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile("test", max_examples=50, deadline=None, database=None,
                          suppress_health_check=_QUIET)  # fmt: skip
settings.register_profile("fuzz", max_examples=500, deadline=None, database=None,
                          suppress_health_check=_QUIET)  # fmt: skip
settings.load_profile(os.environ.get("CEREMONY_HYPOTHESIS", "test"))
