"""Applies a Plan through the gateway: ordering, concurrency, LRO waits, retries and budgets.

Called by the engine.
"""
