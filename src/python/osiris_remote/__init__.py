"""Osiris remote execution: the sandbox executor (`proxy`), the bundle, sandbox backends and the local sandbox
server run on the host; the worker (`osiris_remote.worker`) runs in the sandbox and is all of this package a bundle
carries."""

__version__ = "0.1.0"
