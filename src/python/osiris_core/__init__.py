"""Osiris core: OML and spec models, connections, the compiler and the run engine."""

__version__ = "0.1.0"
