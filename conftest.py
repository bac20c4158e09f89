"""The whole repository's pytest plugins: the real Kubernetes cluster fixtures
(tests/cluster_fixture.py), shared by tests/ and e2e/."""

pytest_plugins = ["tests.cluster_fixture"]
