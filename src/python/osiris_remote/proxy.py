"""The sandbox executor: the host side of a sandbox run.

It ships the bundle the run needs (checked against this host's code), the compiled pipeline and its inputs, runs
the worker through the Osiris sandbox protocol (`osiris_remote.backends`), feeds the worker's events into the run
recorder as they come, and brings artifacts and outputs back. It builds no card and decides no exit code: the run
recorder does, with the same code as for a local run — also when the worker dies mid-run.

The connections' values (secrets included) go to the worker on its stdin, and only once its hello proved it runs
this host's code; a sandbox that cannot reach a connection's host (E2B: nothing private,
`osiris_remote.reachability`) is never opened for it.
"""

from __future__ import annotations

import os
import shlex
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import yaml

from osiris_core.canonical import canonical_json
from osiris_core.errors import InputError, Interrupted, Location, OsirisError, RunError
from osiris_core.events import Stopwatch
from osiris_core.execution import ExecutionSettings, Executor, check_manifest
from osiris_core.fingerprint import run_fingerprint
from osiris_core.input_files import check_regular_file
from osiris_core.interrupts import cancellable, interruptible, stop_reason, stop_signal, stopping
from osiris_core.manifest import MANIFEST_FILE, CompiledPipeline, cfg_path
from osiris_core.recorder import EventOrderError, RunRecorder
from osiris_core.registry import Component
from osiris_remote.backends import (
    Sandbox,
    SandboxLost,
    SandboxOptions,
    StdinWriter,
    open_sandbox,
    refuses_private_hosts,
)
from osiris_remote.bootstrap import PYTHON_FLAGS, bootstrap_command, check_sandbox_env
from osiris_remote.bundle import Bundle, Shipment, load_bundle, ship
from osiris_remote.deps import closure, locked, needed_projects, requirements_txt
from osiris_remote.reachability import check_public_hosts
from osiris_remote.worker.main import ARCHIVE_NAME
from osiris_remote.worker.protocol import LineAssembler, decode, encode_stop, encode_values

WORKDIR = "osiris"
"""Everything the host sends lives under this folder of the sandbox's home."""
INPUTS_DIR = "work"
"""The worker's working directory: inputs are uploaded and outputs written here. It is on no import path."""
LOGS_DIR = "logs"
STDERR_TAIL = 4000
DEPS_DIR = "deps"
"""--e2b-install-deps: where pip installs (`osiris/deps`); the worker's import path has it after the bundle."""
REQUIREMENTS_FILE = "requirements.txt"
STOP_GRACE_S = 8.0
"""How long a worker asked to stop (SIGINT/SIGTERM) may take to roll back and report before its sandbox is killed."""
PIP_LOG = PurePosixPath("artifacts/_system/pip_install.log")
"""pip's output, in the host session (step ids start with a letter, so `_system` is no step's folder)."""
PIP_ENV = {"PIP_ROOT_USER_ACTION": "ignore", "PIP_PROGRESS_BAR": "off"}
"""pip's environment besides --e2b-env (which wins): no secrets, nothing from the host."""


@dataclass(frozen=True)
class _LocalFile:
    step_id: str
    path: str
    required: bool


Phase = Literal["bootstrap", "verified", "trusted", "refused"]


@dataclass
class _Stream:
    """What the worker has said so far, and how far it is trusted.

    The order is fixed: the bootstrap verifies the bundle (`bundle_verified`, or `bundle_rejected`), the worker
    says `hello` with its code fingerprint, and only then — if that fingerprint is the host's — does the worker get
    the connections' values on its stdin, and are its records taken into the run recorder, and its error or its
    `finished`. Anything out of that order, and any record the recorder refuses, is a protocol violation: from then
    on nothing the sandbox says is used.
    """

    recorder: RunRecorder
    host_fp: str
    bundle_sha256: str
    values: dict[str, str] = field(default_factory=dict, repr=False)
    """The connections' values for the worker's stdin (secrets: never shown)."""
    stdin: StdinWriter | None = field(default=None, repr=False)
    values_sent: bool = False
    lines: LineAssembler = field(default_factory=LineAssembler)
    stderr: str = ""
    phase: Phase = "bootstrap"
    sandbox_fingerprint: str | None = None
    rejected: dict[str, Any] | None = None
    violation: str | None = None
    worker_error: str | None = None
    finished: dict[str, Any] | None = None

    def on_stdout(self, chunk: str) -> None:
        for line in self.lines.feed(chunk):
            self._line(line)

    def on_stderr(self, chunk: str) -> None:
        # Masked before it is cut, so a cut never leaves half a secret behind.
        self.stderr = self.recorder.masker.mask(self.stderr + chunk)[-STDERR_TAIL:]

    def finish(self) -> None:
        for line in self.lines.flush():
            self._line(line)

    def attach_stdin(self, write: StdinWriter) -> None:
        """The worker's stdin (`Sandbox.run`'s `on_start`)."""
        self.stdin = write
        self._send_values()

    def _send_values(self) -> None:
        if self.phase == "trusted" and self.stdin is not None and not self.values_sent:
            self.values_sent = True
            self.stdin(encode_values(self.values))

    def _violate(self, what: str) -> None:
        self.violation = self.recorder.masker.mask(what)
        self.phase = "refused"

    def _line(self, line: str) -> None:
        decoded = decode(line)
        if decoded is None or self.phase == "refused":
            return
        kind, payload = decoded
        if self.phase == "bootstrap":
            if kind == "bundle_rejected":
                self.rejected, self.phase = payload, "refused"
            elif kind != "bundle_verified":
                self._violate(f"the sandbox sent '{kind}' before verifying the bundle")
            elif payload.get("bundle_sha256") != self.bundle_sha256:
                self._violate("the sandbox verified a bundle other than the one the host sent")
            else:
                self.phase = "verified"
        elif self.phase == "verified":
            if kind != "hello":
                self._violate(f"the sandbox worker sent '{kind}' before reporting its code fingerprint")
                return
            self.sandbox_fingerprint = str(payload.get("driver_code_sha256"))
            self.phase = "trusted" if self.sandbox_fingerprint == self.host_fp else "refused"
            self._send_values()
        elif self.finished is not None:
            self._violate(f"the sandbox worker sent '{kind}' after it finished")
        elif kind == "record":
            try:
                self.recorder.ingest(payload)
            except (ValueError, EventOrderError) as exc:
                self._violate(f"the sandbox worker sent a record the engine does not write: "
                              f"{' '.join(str(exc).split())[:300]}")
        elif kind == "worker_error":
            self.worker_error = self.recorder.masker.mask(str(payload.get("error")))
        elif kind == "finished":
            self.finished = payload
        else:
            self._violate(f"the sandbox worker sent an unexpected '{kind}'")


def _transfer(what: str, action: Callable[[], None]) -> None:
    """Run a file transfer; any failure (sandbox API, local disk, archive) becomes one RunError."""
    try:
        action()
    except OsirisError:
        raise
    except Exception as exc:
        raise RunError(f"{what} failed: {type(exc).__name__}: {' '.join(str(exc).split())}",
                       hint="check free space and permissions of the files involved; the run is marked failed") \
            from None


@contextmanager
def _opened_sandbox(options: SandboxOptions) -> Iterator[Sandbox]:
    """`open_sandbox`, with a failure to open it (a bad --sandbox-root, a server that cannot start) as an error."""
    with ExitStack() as stack:
        try:
            sandbox = stack.enter_context(open_sandbox(options))
        except OsirisError:
            raise
        except OSError as exc:
            where = Location(str(exc.filename)) if exc.filename else None
            raise InputError(f"cannot open the sandbox: {exc.strerror or exc}", location=where,
                             hint="check --sandbox-root (a folder you can write) and free space") from None
        except Exception as exc:
            raise RunError(f"cannot open the sandbox: {type(exc).__name__}: {' '.join(str(exc).split())}",
                           hint="nothing ran; see the sandbox backend's logs") from None
        yield sandbox


class SandboxExecutor(Executor):
    """Runs the steps in a sandbox of `options.backend`."""

    mode = "sandbox"

    def __init__(self, settings: ExecutionSettings, options: SandboxOptions) -> None:
        super().__init__(settings)
        self.options = options

    def execute(self, compiled: CompiledPipeline, recorder: RunRecorder) -> None:
        options, registry = self.options, self.settings.registry
        execution = recorder.execution
        execution["backend"] = options.backend
        used = registry.used_by(step.component for step in compiled.manifest.steps)
        host_fp = run_fingerprint(component.spec.driver for component in used)
        execution["host_driver_code_sha256"] = host_fp
        check_sandbox_env(options.env)
        check_manifest(compiled, registry, host_fp)
        bundle, spec_paths = self._ship(used)
        execution["bundle_sha256"] = bundle.sha256
        values, connections_yaml = self._connections_for(compiled, recorder)
        inputs = self._input_files(compiled)
        stream = _Stream(recorder, host_fp, bundle.sha256, values)
        with _opened_sandbox(options) as sandbox:
            execution["sandbox_home"] = sandbox.home
            _transfer("uploading to the sandbox",
                      lambda: self._upload(sandbox, bundle, compiled, connections_yaml, inputs))
            deps_dir = self._install_deps(sandbox, compiled, recorder) if options.install_deps else None
            try:
                self._run_worker(sandbox, bundle, spec_paths, stream, deps_dir)
            finally:
                execution["sandbox_driver_code_sha256"] = stream.sandbox_fingerprint
            if stream.finished is None:
                said = f": {stream.stderr.strip()[-300:]}" if stream.stderr.strip() else ""
                raise RunError(stream.worker_error or f"the sandbox worker exited before finishing{said}",
                               hint="see events.jsonl; rerun with --verbose")
            execution["sandbox_session"] = str(stream.finished.get("session"))
            _transfer("bringing back the sandbox's session archive",
                      lambda: self._download_archive(sandbox, recorder))
            _transfer("bringing back output files",
                      lambda: self._download_outputs(sandbox, compiled, recorder.succeeded_steps()))

    def _ship(self, used: list[Component]) -> Shipment:
        """The bundle to ship: exactly what these components run, as this host runs it; and their specs in it."""
        given = load_bundle(self.options.bundle_path) if self.options.bundle_path else None
        return ship(used, given)

    def _connections_for(self, compiled: CompiledPipeline, recorder: RunRecorder) -> tuple[dict[str, str], str]:
        """The referenced connections' values by variable name, and a connections file that only names them.

        A connection whose host the sandbox cannot reach is refused here, before the sandbox opens.
        """
        env: dict[str, str] = {}
        families: dict[str, dict[str, dict[str, str]]] = {}
        refs = sorted({s.connection for s in compiled.manifest.steps if s.connection})
        used = self.settings.registry.used_by(s.component for s in compiled.manifest.steps)
        secret_keys = {k for c in used for k in c.spec.secrets}  # the referencing steps' components' secrets
        public_only = refuses_private_hosts(self.options)
        for index, reference in enumerate(refs):
            fields = recorder.resolve_connection(self.settings.connections, reference, environ=self.settings.env(),
                                                 secret_keys=secret_keys)
            if public_only:
                check_public_hosts(reference, fields)
            entry: dict[str, str] = {}
            for key, value in fields.items():
                if value is None:
                    continue
                var = f"OSIRIS_CONN_{index}_{key.upper()}"
                env[var] = str(value)
                entry[key] = f"${{{var}}}"
            family, alias = reference[1:].split(".", 1)
            families.setdefault(family, {})[alias] = entry
        return env, yaml.safe_dump({"connections": families}, sort_keys=True)

    def _file_paths(self, compiled: CompiledPipeline, direction: Literal["input", "output"]) -> list[_LocalFile]:
        files: list[_LocalFile] = []
        for step in compiled.manifest.steps:
            spec = self.settings.registry.get(step.component).spec
            for key in spec.file_keys(direction):
                value = compiled.configs[step.id].get(key)
                if value is None:
                    continue
                path = PurePosixPath(str(value))
                if path.is_absolute() or ".." in path.parts:
                    raise InputError(f"step '{step.id}': {key} {value!r} must be a relative path inside the "
                                     "working directory for sandbox runs", hint="use a relative path")
                files.extend(_LocalFile(step.id, name, spec.file_required(key))  # a glob: each file it matches
                             for name in spec.local_files(key, str(path)))
        return files

    def _input_files(self, compiled: CompiledPipeline) -> list[str]:
        """The input files to upload: each a regular file (a FIFO or device would hang the upload)."""
        paths = []
        for file in self._file_paths(compiled, "input"):
            if not file.required and not Path(file.path).exists():
                continue  # a file the step creates (e.g. a new DuckDB database)
            check_regular_file(Path(file.path), limit=None, what="input")
            paths.append(file.path)
        return paths

    @staticmethod
    def _upload(sandbox: Sandbox, bundle: Bundle, compiled: CompiledPipeline, connections_yaml: str,
                inputs: list[str]) -> None:
        """Send the bundle, the manifest and configs as validated (not re-read from disk), and the inputs."""
        sandbox.put(f"{WORKDIR}/bundle.zip", bundle.data)
        sandbox.put(f"{WORKDIR}/compiled/{MANIFEST_FILE}", compiled.manifest.to_yaml().encode())
        for step in compiled.manifest.steps:
            sandbox.put(f"{WORKDIR}/compiled/{cfg_path(step.id)}", canonical_json(compiled.configs[step.id]).encode())
        sandbox.put(f"{WORKDIR}/osiris_connections.yaml", connections_yaml.encode())
        for path in inputs:
            try:
                with Path(path).open("rb") as handle:
                    sandbox.put(f"{WORKDIR}/{INPUTS_DIR}/{path}", handle)
            except OSError as exc:
                if exc.filename is None:  # not the local file: the transfer itself
                    raise
                raise InputError(f"cannot read input file {path}: {exc.strerror}", hint="check the path") \
                    from None
        sandbox.make_dir(f"{WORKDIR}/{INPUTS_DIR}")

    def _python(self, sandbox: Sandbox) -> str:
        return self.options.python or sandbox.default_python

    def _install_deps(self, sandbox: Sandbox, compiled: CompiledPipeline, recorder: RunRecorder) -> str:
        """pip-install the manifest's locked requirements (hash-checked, wheels only) into `osiris/deps`.

        pip's output goes to the host session's `artifacts/_system/pip_install.log`; returns the deps folder as
        the worker's working directory sees it.
        """
        projects = closure(needed_projects(compiled.manifest, self.settings.registry))
        _transfer("uploading the requirements",
                  lambda: sandbox.put(f"{WORKDIR}/{REQUIREMENTS_FILE}", requirements_txt(projects).encode()))
        python = self._python(sandbox)
        command = " ".join(shlex.quote(w) for w in (
            python, *PYTHON_FLAGS, "-m", "pip", "install", "--require-hashes", "--no-deps", "--only-binary=:all:",
            "--target", DEPS_DIR, "-r", REQUIREMENTS_FILE, "--disable-pip-version-check", "--no-input"))
        deps: dict[str, Any] = {"projects": [f"{p}=={locked()[p]['version']}" for p in projects], "log": str(PIP_LOG)}
        recorder.execution["deps"] = deps
        output: list[str] = []
        clock = Stopwatch()
        exit_code = -1
        try:
            exit_code = sandbox.run(command, cwd=WORKDIR, env={**PIP_ENV, **self.options.env},
                                    on_stdout=output.append, on_stderr=output.append)
        except SandboxLost as exc:
            raise RunError(f"lost the sandbox while pip installed the requirements: {exc.message}", hint=exc.hint) \
                from None
        finally:
            text = str(recorder.masker.mask("".join(output)))
            log_path = recorder.session.path / PIP_LOG
            log_path.parent.mkdir(parents=True, exist_ok=True)
            body = text if not text or text.endswith("\n") else text + "\n"
            log_path.write_text(f"$ {command}\n{body}exit code {exit_code} after {clock.ms()} ms\n", encoding="utf-8")
        deps["install_ms"] = clock.ms()
        if exit_code != 0:
            if "No module named pip" in text:
                raise RunError(f"--e2b-install-deps needs pip in the sandbox interpreter ({python} has none); "
                               f"pass --sandbox-python with one that has it (see {log_path})",
                               hint="nothing ran")
            error_lines = [line for line in text.splitlines() if line.startswith("ERROR:")]
            said = f": {error_lines[0]}" if error_lines else ""
            raise RunError(f"pip could not install the sandbox's requirements (exit {exit_code}){said}; see {log_path}",
                           hint="the lock is for CPython 3.11 wheels; nothing ran")
        return f"../{DEPS_DIR}"

    def _run_worker(self, sandbox: Sandbox, bundle: Bundle, spec_paths: list[str], stream: _Stream,
                    deps_dir: str | None = None) -> None:
        args = ["--manifest", f"../compiled/{MANIFEST_FILE}", "--connections", "../osiris_connections.yaml",
                "--logs", f"../{LOGS_DIR}", "--expected-fingerprint", stream.host_fp]
        for path in spec_paths:
            args += ["--spec", path]
        if self.settings.checksums:
            args.append("--checksums")
        if self.settings.step_timeout_s:
            args += ["--step-timeout", str(self.settings.step_timeout_s)]
        if self.settings.full_refresh:
            args.append("--full-refresh")
        command = bootstrap_command(self._python(sandbox), "../bundle.zip", "../bundle", bundle.sha256, deps_dir,
                                    args)
        grace = threading.Timer(STOP_GRACE_S, sandbox.kill)
        grace.daemon = True

        def stop_worker() -> None:
            """SIGINT/SIGTERM: the worker stops its run as a local one stops (rolled back, its events sent); a worker
            that cannot be asked, or does not end within the grace period, is killed with its sandbox."""
            if stream.values_sent and stream.stdin is not None:
                stream.stdin(encode_stop(stop_signal() or "SIGINT"))
                grace.start()
            else:
                sandbox.kill()

        try:
            # The host waits for the worker's last events instead of abandoning it mid-write.
            with interruptible(enabled=False), cancellable(stop_worker):
                sandbox.run(command, cwd=f"{WORKDIR}/{INPUTS_DIR}", env=self.options.env,
                            on_stdout=stream.on_stdout, on_stderr=stream.on_stderr, on_start=stream.attach_stdin)
        except SandboxLost as exc:
            if stopping():
                raise Interrupted(stop_reason(), hint="the sandbox was killed; its writes in progress rolled back") \
                    from None
            raise RunError(f"lost the sandbox while the worker ran: {exc.message}", hint=exc.hint) from None
        finally:
            grace.cancel()
            stream.finish()
        if stream.rejected is not None:
            files = ", ".join(str(f) for f in stream.rejected.get("files", []))
            raise RunError(f"the sandbox refused the bundle: {stream.rejected.get('reason')}: {files}",
                           hint="rebuild the bundle; nothing ran")
        if stream.violation is not None:
            raise RunError(f"{stream.violation}; nothing it reported was used",
                           hint="the sandbox did not run the worker the host sent: check --sandbox-python")
        if stream.sandbox_fingerprint is None:
            said = f": {stream.stderr.strip()[-300:]}" if stream.stderr.strip() else ""
            raise RunError(f"the sandbox worker never reported its code fingerprint{said}",
                           hint="check --sandbox-python (a CPython 3.11 with Osiris's requirements, or add "
                                "--e2b-install-deps); nothing ran")
        if stream.sandbox_fingerprint != stream.host_fp:
            raise RunError(f"the sandbox runs driver code {stream.sandbox_fingerprint[:12]}, the host "
                           f"{stream.host_fp[:12]}", hint="rebuild the bundle from this code; nothing ran")

    @staticmethod
    def _download_archive(sandbox: Sandbox, recorder: RunRecorder) -> None:
        session = recorder.session
        remote_dir = session.path / "sandbox"
        with tempfile.TemporaryFile() as archive:
            sandbox.get(f"{WORKDIR}/{LOGS_DIR}/{ARCHIVE_NAME}", archive)
            archive.seek(0)
            with tarfile.open(fileobj=archive, mode="r:gz") as tar:
                tar.extractall(remote_dir, filter="data")
        inner = next((p for p in remote_dir.iterdir() if p.is_dir()), None)
        if inner is not None and (inner / "artifacts").is_dir():
            # Merged into the host's artifacts, which may already hold _system/ (the pip log).
            (session.path / "artifacts").mkdir(exist_ok=True)
            for entry in sorted((inner / "artifacts").iterdir()):
                entry.rename(session.path / "artifacts" / entry.name)
            (inner / "artifacts").rmdir()

    def _download_outputs(self, sandbox: Sandbox, compiled: CompiledPipeline, succeeded: set[str]) -> None:
        """Bring back what succeeded steps wrote, each file replaced atomically; failed steps change nothing."""
        for file in self._file_paths(compiled, "output"):
            remote = f"{WORKDIR}/{INPUTS_DIR}/{file.path}"
            if file.step_id not in succeeded or not sandbox.exists(remote):
                continue
            target = Path(file.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.osiris-download")
            try:
                with partial.open("wb") as handle:
                    sandbox.get(remote, handle)
                os.replace(partial, target)
            finally:
                partial.unlink(missing_ok=True)
