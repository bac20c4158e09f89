"""Kubernetes access for the adapters: an async client (httpx) and resource descriptions."""
