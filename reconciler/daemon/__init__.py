"""The long-lived controller: triggers, worker loop, per-group state, HTTP probes and metrics, shutdown.

Composed by the CLI's `reconcile daemon`.
"""
