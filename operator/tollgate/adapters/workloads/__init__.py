"""Workloads: the versions a rollout moves traffic between."""
