"""One reconcile pass: load, observe, plan, apply, verify, and the outcome of it.

Called by the CLI (plan/apply/status) and the daemon.
"""
