"""The sandbox side of a sandbox run: the worker and what it needs, shipped in the bundle.

Nothing here imports host-side code (the proxy, the backends, the sandbox server, the CLI) or any component
package by name: the worker runs the engine (`osiris_core`) on the components the bundle carries
(`osiris_remote.worker.components`) and reports over stdout (`osiris_remote.worker.protocol`).
"""
