"""The host side of a sandbox run: ship the verified bundle and the compiled pipeline, run the worker,
stream its events into the host session, bring artifacts back, and write one run card for both sides."""

from __future__ import annotations

import io
import os
import shlex
import tarfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import ValidationError

from osiris_core.canonical import canonical_json
from osiris_core.compiler import code_packages
from osiris_core.connections import Connections, parse_reference
from osiris_core.errors import InputError, Location, OsirisError, RunError
from osiris_core.events import EventListener, EventLog, Stopwatch
from osiris_core.fingerprint import code_fingerprint, file_manifest
from osiris_core.input_files import check_regular_file
from osiris_core.manifest import MANIFEST_FILE, CompiledPipeline, cfg_path
from osiris_core.masking import Masker, is_secret_key
from osiris_core.registry import ComponentRegistry
from osiris_core.run_card import RunCard, StepCard
from osiris_core.run_session import registry_masker, run_session, write_card
from osiris_core.runner import RunResult
from osiris_core.session import Session
from osiris_remote.bootstrap import PYTHON_FLAGS, bootstrap_command, check_sandbox_env
from osiris_remote.bundle import Bundle, build_bundle, load_bundle, shown
from osiris_remote.bundle_format import BUNDLE_PACKAGES
from osiris_remote.deps import closure, locked, needed_projects, requirements_txt
from osiris_remote.protocol import LineAssembler, decode
from osiris_remote.sandboxes import SandboxOptions, open_sandbox
from osiris_remote.worker import ARCHIVE_NAME

if TYPE_CHECKING:
    from e2b import Sandbox

WORKDIR = "osiris"
"""Everything the host sends lives under this folder of the sandbox user's home."""
INPUTS_DIR = "work"
"""The worker's working directory: inputs are uploaded and outputs written here. It is on no import path."""
LOGS_DIR = "logs"
STDERR_TAIL = 4000
DEPS_DIR = "deps"
"""--e2b-install-deps: where pip installs (`osiris/deps`); the worker's import path has it after the bundle."""
REQUIREMENTS_FILE = "requirements.txt"
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
    says `hello` with its code fingerprint, and only then — if that fingerprint is the host's — are its records,
    errors and run card taken in. Anything out of that order is a protocol violation: from then on nothing the
    sandbox says is used.
    """

    log: EventLog
    masker: Masker
    host_fp: str
    bundle_sha256: str
    lines: LineAssembler = field(default_factory=LineAssembler)
    stderr: str = ""
    phase: Phase = "bootstrap"
    sandbox_fingerprint: str | None = None
    rejected: dict[str, Any] | None = None
    violation: str | None = None
    worker_error: str | None = None
    card: dict[str, Any] | None = None
    archive: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    def on_stdout(self, chunk: str) -> None:
        for line in self.lines.feed(chunk):
            self._line(line)

    def on_stderr(self, chunk: str) -> None:
        # Masked before it is cut, so a cut never leaves half a secret behind.
        self.stderr = self.masker.mask(self.stderr + chunk)[-STDERR_TAIL:]

    def finish(self) -> None:
        for line in self.lines.flush():
            self._line(line)

    def _violate(self, what: str) -> None:
        self.violation = self.masker.mask(what)
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
        elif kind == "record":
            written = self.log.ingest(payload)
            if "event" in written:
                self.events.append(written)
        elif kind == "worker_error":
            self.worker_error = self.masker.mask(str(payload.get("error")))
        elif kind == "run_card" and self.card is None and isinstance(payload.get("card"), dict):
            self.card = payload["card"]
            self.archive = str(payload.get("archive"))
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


class RemoteRunner:
    """Runs compiled pipelines in a sandbox; same inputs and outputs as `osiris_core.runner.Runner`."""

    def __init__(self, registry: ComponentRegistry, connections: Connections, logs_dir: Path,
                 options: SandboxOptions, *, environ: Mapping[str, str] | None = None,
                 listeners: tuple[EventListener, ...] = ()) -> None:
        self.registry = registry
        self.connections = connections
        self.logs_dir = logs_dir
        self.options = options
        self.environ = dict(os.environ if environ is None else environ)
        self.listeners = listeners
        self.masker = registry_masker(registry)

    def run(self, compiled: CompiledPipeline) -> RunResult:
        with run_session(self.logs_dir, self.masker, self.listeners) as (session, log):
            return self._run(compiled, session, log)

    def _run(self, compiled: CompiledPipeline, session: Session, log: EventLog) -> RunResult:
        clock = Stopwatch()
        host_fp = code_fingerprint(code_packages(self.registry))
        stream = _Stream(log=log, masker=self.masker, host_fp=host_fp, bundle_sha256="")
        execution: dict[str, Any] = {"mode": "sandbox", "backend": self.options.backend,
                                     "host_driver_code_sha256": host_fp}
        error: OsirisError | None = None
        try:
            check_sandbox_env(self.options.env)
            bundle = self._checked_bundle(host_fp)
            execution["bundle_sha256"] = stream.bundle_sha256 = bundle.sha256
            secrets_env, connections_yaml = self._connections_for(compiled)
            inputs = self._input_files(compiled)
            with _opened_sandbox(self.options) as sandbox:
                _transfer("uploading to the sandbox",
                          lambda: self._upload(sandbox, bundle, compiled, connections_yaml, inputs))
                deps_dir = self._install_deps(sandbox, compiled, session, execution) \
                    if self.options.install_deps else None
                self._run_worker(sandbox, bundle, host_fp, secrets_env, stream, deps_dir)
                execution["sandbox_driver_code_sha256"] = stream.sandbox_fingerprint
                if stream.archive:
                    _transfer("bringing back the sandbox's session archive",
                              lambda: self._download_archive(sandbox, session))
                if stream.card is not None:
                    worker_card = stream.card
                    _transfer("bringing back output files",
                              lambda: self._download_outputs(sandbox, compiled, worker_card))
        except OsirisError as exc:
            error = exc
        except Exception as exc:  # whatever else failed, the session still gets its card
            error = RunError(f"the sandbox run failed: {type(exc).__name__}: {' '.join(str(exc).split())}",
                             hint="see events.jsonl; nothing more was run")
        stream.finish()
        card = self._card(compiled, session, stream, error, execution, host_fp, clock)
        if stream.card is None or error is not None:
            log.event("run_complete", {"status": card.status, "exit_code": card.exit_code,
                                       "duration_ms": card.duration_ms, "steps": card.summary()})
        write_card(session, card, self.masker)
        return RunResult(session=session, card=card)

    def _checked_bundle(self, host_fp: str) -> Bundle:
        """The bundle to ship, every file verified against its manifest and against the code this host runs."""
        bundle = load_bundle(self.options.bundle_path) if self.options.bundle_path else build_bundle()
        bundle_fp = bundle.fingerprint(code_packages(self.registry))
        if bundle_fp != host_fp:
            raise InputError(
                f"the bundle ({bundle.origin}) carries driver code {bundle_fp[:12]} but this host runs "
                f"{host_fp[:12]}", hint="rebuild the bundle from this code (or drop --bundle)")
        differing = bundle.differences(file_manifest(BUNDLE_PACKAGES))
        if differing:
            raise InputError(f"the bundle ({bundle.origin}) differs from the code this host runs: {shown(differing)}",
                             hint="rebuild the bundle from this code (or drop --bundle)")
        return bundle

    def _connections_for(self, compiled: CompiledPipeline) -> tuple[dict[str, str], str]:
        """Env vars with the referenced connections' values, and a connections file that only names them."""
        env: dict[str, str] = {}
        families: dict[str, dict[str, dict[str, str]]] = {}
        refs = sorted({s.connection for s in compiled.manifest.steps if s.connection})
        secret_keys = {k for c in self.registry for k in c.spec.secrets}
        for index, text in enumerate(refs):
            ref = parse_reference(text)
            fields = self.connections.resolve(ref, environ=self.environ)
            self.masker.add_secret_values(
                str(v) for k, v in fields.items() if v is not None and is_secret_key(k, secret_keys))
            entry: dict[str, str] = {}
            for key, value in fields.items():
                if value is None:
                    continue
                var = f"OSIRIS_CONN_{index}_{key.upper()}"
                env[var] = str(value)
                entry[key] = f"${{{var}}}"
            assert ref.alias is not None
            families.setdefault(ref.family, {})[ref.alias] = entry
        return env, yaml.safe_dump({"connections": families}, sort_keys=True)

    def _file_paths(self, compiled: CompiledPipeline, direction: Literal["input", "output"]) -> list[_LocalFile]:
        files = []
        for step in compiled.manifest.steps:
            spec = self.registry.get(step.component).spec
            for key in spec.file_keys(direction):
                value = compiled.configs[step.id].get(key)
                if value is None:
                    continue
                path = PurePosixPath(str(value))
                if path.is_absolute() or ".." in path.parts:
                    raise InputError(f"step '{step.id}': {key} {value!r} must be a relative path inside the "
                                     "working directory for sandbox runs", hint="use a relative path")
                files.append(_LocalFile(step.id, str(path), spec.file_required(key)))
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

    def _upload(self, sandbox: Sandbox, bundle: Bundle, compiled: CompiledPipeline, connections_yaml: str,
                inputs: list[str]) -> None:
        """Send the bundle, the manifest and configs as validated (not re-read from disk), and the inputs."""
        sandbox.files.write(f"{WORKDIR}/bundle.zip", bundle.data)
        sandbox.files.write(f"{WORKDIR}/compiled/{MANIFEST_FILE}", compiled.manifest.to_yaml())
        for step in compiled.manifest.steps:
            sandbox.files.write(f"{WORKDIR}/compiled/{cfg_path(step.id)}", canonical_json(compiled.configs[step.id]))
        sandbox.files.write(f"{WORKDIR}/osiris_connections.yaml", connections_yaml)
        for path in inputs:
            try:
                data = Path(path).read_bytes()
            except OSError as exc:
                raise InputError(f"cannot read input file {path}: {exc.strerror}", hint="check the path") \
                    from None
            sandbox.files.write(f"{WORKDIR}/{INPUTS_DIR}/{path}", data)

    def _install_deps(self, sandbox: Sandbox, compiled: CompiledPipeline, session: Session,
                      execution: dict[str, Any]) -> str:
        """pip-install the manifest's locked requirements (hash-checked, wheels only) into `osiris/deps`.

        pip's output goes to the host session's `artifacts/_system/pip_install.log`; returns the absolute path
        of the deps folder as the sandbox's processes see it.
        """
        from e2b import CommandExitException

        projects = closure(needed_projects(compiled.manifest, self.registry))
        sandbox.files.write(f"{WORKDIR}/{REQUIREMENTS_FILE}", requirements_txt(projects))
        python = self.options.interpreter()
        command = " ".join(shlex.quote(w) for w in (
            python, *PYTHON_FLAGS, "-m", "pip", "install", "--require-hashes", "--no-deps", "--only-binary=:all:",
            "--target", DEPS_DIR, "-r", REQUIREMENTS_FILE, "--disable-pip-version-check", "--no-input"))
        execution["deps"] = {"projects": [f"{p}=={locked()[p]['version']}" for p in projects], "log": str(PIP_LOG)}
        output: list[str] = []
        clock = Stopwatch()
        exit_code = 0
        try:
            sandbox.commands.run(command, envs={**PIP_ENV, **self.options.env}, cwd=f"/home/user/{WORKDIR}",
                                 timeout=0, on_stdout=output.append, on_stderr=output.append)
        except CommandExitException as exc:
            exit_code = exc.exit_code
        except Exception as exc:
            raise RunError(f"lost the sandbox while pip installed the requirements: {type(exc).__name__}: {exc}",
                           hint="see the sandbox logs; raise --e2b-timeout if it expired") from None
        finally:
            text = str(self.masker.mask("".join(output)))
            log_path = session.path / PIP_LOG
            log_path.parent.mkdir(parents=True, exist_ok=True)
            body = text if not text or text.endswith("\n") else text + "\n"
            log_path.write_text(f"$ {command}\n{body}exit code {exit_code} after {clock.ms()} ms\n", encoding="utf-8")
        execution["deps"]["install_ms"] = clock.ms()
        if exit_code != 0:
            if "No module named pip" in text:
                raise RunError(f"--e2b-install-deps needs pip in the sandbox interpreter ({python} has none); "
                               f"pass --sandbox-python with one that has it (see {log_path})",
                               hint="nothing ran")
            error_lines = [line for line in text.splitlines() if line.startswith("ERROR:")]
            said = f": {error_lines[0]}" if error_lines else ""
            raise RunError(f"pip could not install the sandbox's requirements (exit {exit_code}){said}; see {log_path}",
                           hint="the lock is for CPython 3.11 wheels; nothing ran")
        try:  # the local sandbox's processes see host paths, so ask rather than assume /home/user
            where = sandbox.commands.run("pwd", cwd=f"/home/user/{WORKDIR}").stdout.strip().splitlines()[-1]
        except Exception as exc:
            raise RunError(f"lost the sandbox after pip installed the requirements: {type(exc).__name__}: {exc}",
                           hint="see the sandbox logs; raise --e2b-timeout if it expired") from None
        return f"{where}/{DEPS_DIR}"

    def _run_worker(self, sandbox: Sandbox, bundle: Bundle, host_fp: str, secrets_env: dict[str, str],
                    stream: _Stream, deps_dir: str | None = None) -> None:
        from e2b import CommandExitException

        args = ["--manifest", f"../compiled/{MANIFEST_FILE}", "--connections", "../osiris_connections.yaml",
                "--logs", f"../{LOGS_DIR}", "--expected-fingerprint", host_fp]
        if self.options.checksums:
            args.append("--checksums")
        if self.options.step_timeout_s:
            args += ["--step-timeout", str(self.options.step_timeout_s)]
        command = bootstrap_command(self.options.interpreter(), "../bundle.zip", "../bundle", bundle.sha256, deps_dir,
                                    args)
        envs = {**self.options.env, **secrets_env}
        sandbox.files.make_dir(f"{WORKDIR}/{INPUTS_DIR}")
        try:
            sandbox.commands.run(command, envs=envs, cwd=f"/home/user/{WORKDIR}/{INPUTS_DIR}", timeout=0,
                                 on_stdout=stream.on_stdout, on_stderr=stream.on_stderr)
        except CommandExitException:
            pass  # the card (or its absence) says what happened
        except Exception as exc:
            raise RunError(f"lost the sandbox while the worker ran: {type(exc).__name__}: {exc}",
                           hint="see the sandbox logs; raise --e2b-timeout if it expired") from None
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
        if stream.sandbox_fingerprint != host_fp:
            raise RunError(f"the sandbox runs driver code {stream.sandbox_fingerprint[:12]}, the host "
                           f"{host_fp[:12]}", hint="rebuild the bundle from this code; nothing ran")

    def _download_archive(self, sandbox: Sandbox, session: Session) -> None:
        data = bytes(sandbox.files.read(f"{WORKDIR}/{LOGS_DIR}/{ARCHIVE_NAME}", format="bytes"))
        remote_dir = session.path / "sandbox"
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            tar.extractall(remote_dir, filter="data")
        inner = next((p for p in remote_dir.iterdir() if p.is_dir()), None)
        if inner is not None and (inner / "artifacts").is_dir():
            # Merged into the host's artifacts, which may already hold _system/ (the pip log).
            (session.path / "artifacts").mkdir(exist_ok=True)
            for entry in sorted((inner / "artifacts").iterdir()):
                entry.rename(session.path / "artifacts" / entry.name)
            (inner / "artifacts").rmdir()

    def _download_outputs(self, sandbox: Sandbox, compiled: CompiledPipeline, card: dict[str, Any]) -> None:
        """Bring back what succeeded steps wrote, each file replaced atomically; failed steps change nothing."""
        succeeded = {s["step_id"] for s in card.get("steps", []) if s.get("status") == "succeeded"}
        for file in self._file_paths(compiled, "output"):
            remote = f"{WORKDIR}/{INPUTS_DIR}/{file.path}"
            if file.step_id not in succeeded or not sandbox.files.exists(remote):
                continue
            target = Path(file.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.osiris-download")
            try:
                partial.write_bytes(bytes(sandbox.files.read(remote, format="bytes")))
                os.replace(partial, target)
            finally:
                partial.unlink(missing_ok=True)

    def _card(self, compiled: CompiledPipeline, session: Session, stream: _Stream, error: OsirisError | None,
              execution: dict[str, Any], host_fp: str, clock: Stopwatch) -> RunCard:
        manifest = compiled.manifest
        if stream.card is not None and error is None:
            try:
                remote = RunCard.model_validate(stream.card)
            except ValidationError as exc:
                error = RunError(f"the sandbox worker sent a malformed run card ({exc.error_count()} problems)",
                                 hint="see events.jsonl")
            else:
                execution["sandbox_session"] = remote.session_id
                return remote.model_copy(update={"session_id": session.id, "execution": execution,
                                                 "duration_ms": clock.ms()})
        if error is None:
            reason = stream.worker_error or (
                "the sandbox worker exited before finishing" + (f": {stream.stderr.strip()[-300:]}"
                                                                if stream.stderr.strip() else ""))
            error = RunError(reason, hint="see events.jsonl; rerun with --verbose")
        started = {e.get("step_id") for e in stream.events if e.get("event") == "step_start"}
        finished = {e.get("step_id"): e for e in stream.events if e.get("event") in ("step_complete", "step_failed")}
        steps = []
        for step in manifest.steps:
            card = StepCard(step_id=step.id, component=step.component, driver=step.driver, status="skipped")
            done = finished.get(step.id)
            if done is not None and done["event"] == "step_complete":
                card.status, card.rows_in, card.rows_out = "succeeded", done.get("rows_in"), done.get("rows_out")
                card.duration_ms = done.get("duration_ms")
            elif done is not None or step.id in started:
                card.status = "failed"
                card.error = str(done.get("error")) if done is not None else error.message
                card.error_type = str(done.get("error_type")) if done is not None else type(error).__name__
            steps.append(card)
        exit_code = 2 if isinstance(error, InputError) else 1
        return RunCard(session_id=session.id, pipeline=manifest.pipeline.name, status="failed", exit_code=exit_code,
                       duration_ms=clock.ms(),
                       driver_code_sha256=execution.get("sandbox_driver_code_sha256") or host_fp,
                       manifest_driver_code_sha256=manifest.fingerprints.driver_code_sha256,
                       error=self.masker.mask(error.render()), steps=steps, execution=execution)

