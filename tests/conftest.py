"""Shared pytest configuration: hypothesis profiles (HYPOTHESIS_PROFILE=ci in CI). The cluster
fixtures are registered by the repository's conftest.py."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("ci", max_examples=400, deadline=None, derandomize=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
