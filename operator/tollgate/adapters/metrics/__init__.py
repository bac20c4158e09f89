"""Metrics adapters: read the evidence the engine judges.

``prometheus.py`` is the async HTTP client (httpx), ``families.py`` the metric names of each
preset, ``promql.py`` query building and escaping, ``histograms.py`` quantiles from bucket
increases, ``batch.py`` one query per metric family per tick for all rollouts at once.
"""
