"""Pure values shared by every layer: the desired group (manifest), the observed group and the plan.

Nothing here does I/O. Every other package of the reconciler imports from here.
"""
