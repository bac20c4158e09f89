"""Detection quality through the real path: generated history, a real Prometheus, the replay.

Where ``bench.detection`` feeds the engine's tests directly, this benchmark writes seeded
history as OpenMetrics, backfills a real Prometheus with promtool, and judges every replay
with ``tollgate analyze --replay``'s own code in-process, for a default spec and every manifest
in ``examples/``. docs/detection.md ("Through the real path") describes it.
"""
