"""Composition root: kopf handlers, the reconcile loop and settings (observe, decide, act,
record status once). Empty until the operator runtime lands; the layer exists so the import
contracts cover it from the first commit.
"""
