"""Renders a Plan (and apply outcomes) as terminal text, markdown and JSON. Pure functions of the data.

Called by the CLI and the daemon's status page.
"""
