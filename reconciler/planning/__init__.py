"""Normalises desired and observed groups, diffs them and classifies each change into a Plan.

Pure functions, called by the engine. The classification table of DESIGN.md section 5 lives here.
"""
