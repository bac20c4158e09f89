"""Tollgate: progressive delivery for Kubernetes with SLO-driven automatic rollback.

Layers, from the bottom: ``api`` (the contract), ``engine`` (pure decisions), ``adapters``
(all I/O), ``runtime`` (kopf wiring) and ``cli``. Imports only point downward; import-linter
enforces it.
"""

__version__ = "0.1.0.dev0"
