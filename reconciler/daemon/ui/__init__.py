"""The daemon's read-only status page (DESIGN section 14): `auth` decides who may read it, `views` turns what
the daemon knows into plain data, `live` reads a group's containers, events and log tail from Azure on
demand, and `routes` serves it all as server-rendered HTML (Jinja2, autoescaped) with a small script that
refreshes it in place."""
