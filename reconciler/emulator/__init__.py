"""A local ARM server for Microsoft.ContainerInstance/containerGroups at api-version 2023-05-01.

Used by tests, benchmarks, demos and `reconcile --local`. It imports nothing else from reconciler.
"""
