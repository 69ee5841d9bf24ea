"""Replicas of one daemon instance electing writers and sharing state through Azure Blob Storage (DESIGN
section 13): `shards` (naming, hashing, balancing), `fence` (what this replica may write now), `coordinator`
(the leases, the tick, the shared state book)."""
