"""Benchmarks: each prints a table and writes JSON to bench/results/ (run with `make bench`)."""
