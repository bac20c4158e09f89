"""Shared pytest configuration: hypothesis profiles (HYPOTHESIS_PROFILE=ci in CI), and the local
Kubernetes cluster fixture (tests/cluster_fixture.py)."""

import os

from hypothesis import HealthCheck, settings

pytest_plugins = ["tests.cluster_fixture"]

settings.register_profile(
    "default", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("ci", max_examples=400, deadline=None, derandomize=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
