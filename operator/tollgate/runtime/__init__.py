"""Composition root: kopf handlers, the reconcile loop and settings (observe, decide, act,
record status once), deletion and peering. Wiring only: decisions are the engine's, I/O the
adapters'.
"""
