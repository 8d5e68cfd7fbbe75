"""Osiris remote execution: the driver bundle, the sandbox proxy and worker, and sandbox backends."""

__version__ = "0.1.0"
