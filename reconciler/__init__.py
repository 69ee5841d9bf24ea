"""aci-reconciler: a declarative reconciler (GitOps controller) for Azure Container Instances.

The package layout and its layers are those of DESIGN.md section 2; `reconciler.cli` is the entry point.
"""

__version__ = "0.1.0"
