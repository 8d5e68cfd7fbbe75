"""Sandbox-related CLI pieces: the run flags and the comparison `osiris parity` prints."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from osiris_cli.output import emit_json, table
from osiris_core.errors import InputError
from osiris_remote.backends import BACKENDS, SandboxOptions
from osiris_remote.backends.e2b import MAX_LIFETIME_S
from osiris_remote.bootstrap import check_sandbox_env

if TYPE_CHECKING:
    from osiris_cli.app import App
    from osiris_core.manifest import CompiledPipeline
    from osiris_core.registry import ComponentRegistry

UNSUPPORTED_E2B_FLAGS = {
    "e2b_cpu": "--e2b-cpu",
    "e2b_mem": "--e2b-mem",
}


def add_sandbox_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("sandbox execution")
    group.add_argument("--sandbox", choices=sorted(BACKENDS), default=None,
                       help="run the steps in a sandbox of this backend: `local` (an E2B-compatible server on this "
                            "machine), `e2b` (the E2B cloud)")
    group.add_argument("--e2b", action="store_true", help="same as --sandbox e2b")
    group.add_argument("--e2b-template", default=None, metavar="NAME", help="E2B template for the sandbox")
    group.add_argument("--e2b-timeout", type=int, default=3600, metavar="SECONDS",
                       help="sandbox lifetime in seconds (default 3600; E2B: at most 3600 on Hobby, 86400 on Pro)")
    group.add_argument("--step-timeout", type=float, default=None, metavar="SECONDS",
                       help="fail a step that runs longer than this (sandbox runs)")
    group.add_argument("--e2b-env", action="append", default=[], metavar="K=V",
                       help="extra environment variable for the sandbox worker (repeatable); PYTHON*, LD_*, "
                            "PATH, HOME and others that could load code before the bundle is verified are refused")
    group.add_argument("--e2b-cpu", default=None, help=argparse.SUPPRESS)
    group.add_argument("--e2b-mem", default=None, help=argparse.SUPPRESS)
    group.add_argument("--bundle", type=Path, default=None, metavar="PATH",
                       help="driver bundle to ship (default: built from the code this command runs)")
    group.add_argument("--sandbox-python", default=None, metavar="PATH",
                       help="interpreter inside the sandbox (default: python3 on E2B, this one locally)")
    group.add_argument("--sandbox-root", type=Path, default=None, metavar="DIR",
                       help="local sandbox only: keep its files in DIR after the run, for inspection")
    group.add_argument("--e2b-install-deps", action="store_true",
                       help="before the worker starts, pip-install in the sandbox the locked, hash-checked "
                            "third-party projects this pipeline needs (log: artifacts/_system/pip_install.log)")
    group.add_argument("--e2b-allow-private-hosts", action="store_true",
                       help="let connections name this machine, private networks or sockets (refused for E2B "
                            "runs: a sandbox cannot reach them) — for a template that reaches them over a VPN")
    group.add_argument("--e2b-like", action="store_true",
                       help="local sandbox: refuse connections an E2B sandbox could not reach, as --e2b does")


def _backend(args: argparse.Namespace) -> str | None:
    """The sandbox backend the flags name (None: run here); contradictory or unsupported flags are errors."""
    for dest, flag in UNSUPPORTED_E2B_FLAGS.items():
        if getattr(args, dest, None) is not None:
            raise InputError(f"{flag} is not supported: E2B sizes a sandbox by its template",
                             hint="build an E2B template with the CPU/memory you need and pass --e2b-template")
    backend: str | None = args.sandbox
    if args.e2b:
        if backend not in (None, "e2b"):
            raise InputError(f"--e2b contradicts --sandbox {backend}", hint="give one of them")
        backend = "e2b"
    return backend


def check_execution_flags(args: argparse.Namespace) -> bool:
    """Check every execution flag before anything is compiled or run; whether they ask for a sandbox."""
    if _backend(args) is None:
        sandbox_only = {"--e2b-template": args.e2b_template, "--step-timeout": args.step_timeout,
                        "--bundle": args.bundle, "--sandbox-python": args.sandbox_python,
                        "--e2b-env": args.e2b_env or None, "--sandbox-root": args.sandbox_root,
                        "--e2b-install-deps": args.e2b_install_deps or None,
                        "--e2b-allow-private-hosts": args.e2b_allow_private_hosts or None,
                        "--e2b-like": args.e2b_like or None}
        given = [flag for flag, value in sandbox_only.items() if value is not None]
        if given:
            verb = "apply" if len(given) > 1 else "applies"
            raise InputError(f"{', '.join(given)} {verb} only to sandbox runs", hint="add --sandbox local or --e2b")
        return False
    sandbox_options(args)
    return True


def sandbox_options(args: argparse.Namespace) -> SandboxOptions:
    """The sandbox the flags ask for; contradictory or unsupported flags are errors."""
    backend = _backend(args)
    if backend is None:
        raise InputError("no sandbox backend given", hint="add --sandbox local or --e2b")
    env: dict[str, str] = {}
    for item in args.e2b_env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"--e2b-env {item!r} is not K=V", hint="write --e2b-env NAME=value")
        env[key] = value
    check_sandbox_env(env)
    if args.sandbox_root is not None and backend != "local":
        raise InputError("--sandbox-root applies to --sandbox local only", hint="drop it for E2B runs")
    if args.step_timeout is not None and not (0 < args.step_timeout < float("inf")):
        raise InputError(f"--step-timeout {args.step_timeout} is not a positive number of seconds",
                         hint="give e.g. --step-timeout 600")
    if args.e2b_timeout <= 0:
        raise InputError("--e2b-timeout must be positive", hint="give the sandbox lifetime in seconds")
    if backend == "e2b" and args.e2b_timeout > MAX_LIFETIME_S:
        raise InputError(f"--e2b-timeout {args.e2b_timeout} is longer than any E2B sandbox lives",
                         hint=f"give at most {MAX_LIFETIME_S} (24 h, the Pro plan's limit; Hobby: 3600)")
    if args.e2b_like and backend != "local":
        raise InputError("--e2b-like applies to --sandbox local only", hint="drop it: E2B runs check hosts anyway")
    private_hosts: bool | None = None  # as the backend's sandboxes do
    if args.e2b_like:
        private_hosts = False
    if args.e2b_allow_private_hosts:
        private_hosts = True
    return SandboxOptions(backend=backend, template=args.e2b_template, lifetime_s=args.e2b_timeout, env=env,
                          python=args.sandbox_python, bundle_path=args.bundle, local_root=args.sandbox_root,
                          install_deps=args.e2b_install_deps, reach_private_hosts=private_hosts)


def add_parity_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allow-real-targets", action="store_true",
                        help="run the pipeline twice even when a writer is not idempotent (e.g. write_mode append: "
                             "its rows are written twice)")


def check_rerun_safe(registry: ComponentRegistry, compiled: CompiledPipeline) -> None:
    """Refuse (`InputError`) a pipeline whose writers would change their targets again when it runs a second time
    (a spec's `idempotent`: the SQL writers' append, a third-party writer that does not declare it)."""
    unsafe = []
    for step in compiled.manifest.steps:
        if step.mode != "write" or step.component not in registry:
            continue
        spec = registry.get(step.component).spec
        config = compiled.configs[step.id]
        if not spec.writes_idempotently(config):
            mode = {**spec.defaults, **config}.get("write_mode")
            unsafe.append(f"'{step.id}' ({step.component}" + (f", write_mode {mode})" if mode else ")"))
    if unsafe:
        steps = "step " + unsafe[0] if len(unsafe) == 1 else "steps " + ", ".join(unsafe)
        raise InputError(f"parity runs the pipeline twice (here, then in the sandbox) and {steps} would write "
                         "to the same target twice",
                         hint="use write_mode replace or upsert (or a scratch target), or pass --allow-real-targets "
                              "to run it twice anyway")


def compare_cards(local: dict[str, Any], remote: dict[str, Any]) -> list[str]:
    """Readable differences between a local and a sandbox run card; empty when they agree."""
    diffs = []
    for field in ("status", "exit_code"):
        if local[field] != remote[field]:
            diffs.append(f"{field}: local {local[field]!r} != sandbox {remote[field]!r}")
    local_fp = local["driver_code_sha256"]
    remote_fp = remote["execution"].get("sandbox_driver_code_sha256")
    if local_fp != remote_fp:
        diffs.append(f"driver code fingerprint: local {local_fp} != sandbox {remote_fp}")
    if remote["status"] != local["status"] and remote.get("error"):
        diffs.append(f"sandbox run: {remote['error']}")
    local_bundle = local["execution"].get("bundle_sha256")
    remote_bundle = remote["execution"].get("bundle_sha256")
    if local_bundle != remote_bundle:
        diffs.append(f"bundle sha256: local {local_bundle} != sandbox {remote_bundle}")
    remote_steps = {s["step_id"]: s for s in remote["steps"]}
    for step in local["steps"]:
        other = remote_steps.get(step["step_id"])
        if other is None:
            diffs.append(f"step {step['step_id']}: missing in the sandbox run")
            continue
        for field in ("status", "rows_in", "rows_out", "output_sha256", "error_type"):
            if step[field] != other[field]:
                diffs.append(f"step {step['step_id']}: {field} local {step[field]!r} != sandbox {other[field]!r}")
    return diffs


def print_parity(app: App, local: dict[str, Any], remote: dict[str, Any], diffs: list[str]) -> None:
    if app.json:
        emit_json({"identical": not diffs, "differences": diffs, "local": local, "sandbox": remote})
        return
    rows = []
    remote_steps = {s["step_id"]: s for s in remote["steps"]}
    for step in local["steps"]:
        other = remote_steps.get(step["step_id"], {})
        same = "yes" if all(step[f] == other.get(f) for f in ("status", "rows_in", "rows_out", "output_sha256")) \
            else "NO"
        rows.append((step["step_id"], step["status"], other.get("status"), step["rows_out"], other.get("rows_out"),
                     (step["output_sha256"] or "")[:12], same))
    print(table(["step", "local", "sandbox", "rows local", "rows sandbox", "checksum", "same"], rows))
    print(f"Bundle {remote['execution'].get('bundle_sha256', '')[:16]}, fingerprint "
          f"{remote['execution'].get('sandbox_driver_code_sha256', '')}")
    if diffs:
        print("Differences:")
        for diff in diffs:
            print(f"  - {diff}")
    else:
        print("Parity: identical")
