"""Turns a directory of manifests into validated desired groups and a revision.

Called by the engine (one reconcile pass) and by `reconcile validate`.
"""
