"""Test harness shared by the test suite, the demo and the benchmarks.

There is no cluster on our machines (no kube-apiserver, kind or Docker), yet the operator must
run for real: :mod:`tollgate.testing.kubeapi` is an in-memory Kubernetes API server that kopf
and our httpx client talk to, and :mod:`tollgate.testing.prometheus` runs a real Prometheus.
The operator runtime never imports this package: it exists only so the real operator can run
end to end on a developer's or CI's machine, and it depends on test-only packages (kmock).

Nothing is imported here on purpose, so that ``python -m tollgate.testing.kubeapi`` starts the
server without importing the module twice.
"""
