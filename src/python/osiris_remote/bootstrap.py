"""The first thing that runs in a sandbox: unpack the bundle, verify every file, then start the worker.

It is sent by the host as command text (not taken from the bundle), uses only the standard library and the
interpreter's own site-packages, and refuses — naming the files — when the bundle is not the one the host sent or
a file differs from the bundle's manifest. Only then does it run the worker from the verified files.

Two processes share the work, so a second core shortens the start: a forked checker unpacks and verifies the
bundle (then compiles the engine's and the worker's modules to bytecode), while the bootstrap imports the engine's
libraries (`WARM_MODULES`) from the interpreter's site-packages — not with `--e2b-install-deps`, whose folder
must come first. Once the checker's verdict is in, the bootstrap runs the worker in the same interpreter with the
verified bundle in front of its import path; if the bundle has a top-level package named like a module already
imported, it execs a fresh interpreter instead (`WORKER_START`), so the bundle's package is the one imported.

Isolation: the pipeline's input files are uploaded into the worker's working directory, so nothing may be
imported from there. Both the bootstrap and the worker run as `python -I -u`: isolated mode puts neither the
working directory nor the user's site-packages on `sys.path` and ignores every `PYTHON*` variable
(PYTHONPATH, PYTHONHOME, PYTHONSTARTUP, ...). The worker's `sys.path` is the verified bundle, then the
`--e2b-install-deps` folder (pip-installed from the hash-checked lock), then the interpreter's own standard
library and site-packages; `.pth` files are read only from the interpreter's site-packages, and
`sitecustomize` only from its own paths. Environment variables that would make the shell, the dynamic
loader, the C library, OpenSSL or Python load code or configuration from elsewhere before the bundle is
verified are refused up front (`check_sandbox_env`), as are Osiris's own names.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence

from osiris_core.errors import InputError

EXIT_BUNDLE_REJECTED = 3
PYTHON_FLAGS = ("-I", "-u")
"""Isolated (no cwd, no user site, no PYTHON* variables) and unbuffered (records reach the host as written)."""

WORKER_START = (
    "import runpy, sys; n = int(sys.argv[1]); sys.path[:0] = sys.argv[2:2 + n]; del sys.argv[1:2 + n]; "
    "runpy.run_module('osiris_remote.worker.main', run_name='__main__', alter_sys=True)"
)
"""The worker's entry: the import path is exactly the folders it is given, in front of the interpreter's own."""

WARM_MODULES = ("pydantic", "yaml", "jsonschema", "pyarrow", "pyarrow.csv")
"""Libraries the engine imports, imported from the interpreter's own site-packages while the bundle is verified
(not with `--e2b-install-deps`, whose folder must come first on the worker's import path)."""

_BOOTSTRAP_TEMPLATE = r'''
import hashlib, io, json, os, shutil, sys, zipfile
MARK = "\x1eosiris "
def say(kind, payload):
    sys.stdout.write(MARK + json.dumps({"kind": kind, "payload": payload}) + "\n")
    sys.stdout.flush()
bundle_zip, target, expected, deps = sys.argv[1:5]
deps = os.path.abspath(deps) if deps else ""
def verify():
    with open(bundle_zip, "rb") as handle:
        data = handle.read()
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        return dict(reason="the uploaded bundle is not the one the host sent", files=[bundle_zip], expected=expected,
                    actual=actual)
    shutil.rmtree(target, ignore_errors=True)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            archive.extractall(target)
        with open(os.path.join(target, "osiris_bundle.json"), "rb") as handle:
            manifest = json.load(handle)["files"]
        if not isinstance(manifest, dict):
            raise ValueError("its manifest lists no files")
    except Exception as exc:
        return dict(reason="the bundle cannot be unpacked: %s: %s" % (type(exc).__name__, exc), files=[bundle_zip])
    present = set()
    for root, _, names in os.walk(target):
        for name in names:
            path = os.path.relpath(os.path.join(root, name), target).replace(os.sep, "/")
            if path != "osiris_bundle.json":
                present.add(path)
    def digest(path):
        with open(os.path.join(target, path), "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    listed = set(manifest)
    bad = sorted(p for p in present | listed if p not in listed or p not in present or digest(p) != manifest[p])
    if bad:
        return dict(reason="files differ from the bundle manifest", files=bad)
    if deps and not os.path.isdir(deps):
        return dict(reason="the folder of installed requirements is missing", files=[deps])
    return {"files": len(manifest)}
verdicts, report = os.pipe()
checker = os.fork()
if checker == 0:
    try:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(verdicts)
        try:
            verdict = verify()
        except Exception as exc:
            verdict = dict(reason="the bundle cannot be verified: %s: %s" % (type(exc).__name__, exc),
                           files=[bundle_zip])
        with os.fdopen(report, "w") as out:
            out.write(json.dumps(verdict))
        if "reason" not in verdict:
            import compileall
            for package in ("osiris_core", "osiris_remote"):
                compileall.compile_dir(os.path.join(target, package), quiet=2)
    finally:
        os._exit(0)
os.close(report)
if not deps:
    for module in @WARM@:
        try:
            __import__(module)
        except Exception:
            pass
with os.fdopen(verdicts) as handle:
    said = handle.read()
os.waitpid(checker, 0)
verdict = json.loads(said) if said else dict(reason="the bundle could not be verified", files=[bundle_zip])
if "reason" in verdict:
    say("bundle_rejected", verdict)
    sys.exit(@EXIT@)
say("bundle_verified", {"bundle_sha256": expected, "files": verdict["files"]})
path = [os.path.abspath(target)] + ([deps] if deps else [])
shadowed = {name[:-3] if name.endswith(".py") else name for name in os.listdir(target)} & set(sys.modules)
if shadowed:
    os.execv(sys.executable, [sys.executable, @FLAGS@, "-c", @WORKER@, str(len(path)), *path, *sys.argv[5:]])
sys.path[:0] = path
del sys.argv[1:5]
import runpy
runpy.run_module("osiris_remote.worker.main", run_name="__main__", alter_sys=True)
'''
BOOTSTRAP_SOURCE = (_BOOTSTRAP_TEMPLATE.replace("@EXIT@", str(EXIT_BUNDLE_REJECTED))
                    .replace("@FLAGS@", ", ".join(repr(f) for f in PYTHON_FLAGS))
                    .replace("@WORKER@", repr(WORKER_START))
                    .replace("@WARM@", repr(WARM_MODULES)))


def bootstrap_command(python: str, bundle_zip: str, target_dir: str, bundle_sha256: str, deps_dir: str | None,
                      worker_args: Sequence[str]) -> str:
    """The shell command that verifies the bundle and starts the worker (`osiris_remote.worker.main`).

    The worker gets `worker_args`; `deps_dir` (relative to the working directory, or absolute) goes on its import
    path after the bundle (`--e2b-install-deps`).
    """
    words = [python, *PYTHON_FLAGS, "-c", BOOTSTRAP_SOURCE, bundle_zip, target_dir, bundle_sha256, deps_dir or "",
             *worker_args]
    return " ".join(shlex.quote(w) for w in words)


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
REFUSED_ENV_PREFIXES = ("PYTHON", "LD_", "DYLD_", "OSIRIS_")
"""Python's own variables (ignored by the isolated interpreter anyway), the dynamic loader's, and Osiris's."""
REFUSED_ENV_NAMES = frozenset({
    "PATH", "HOME",  # which `python3` runs; where a login shell reads its profile
    "BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "PS4", "PROMPT_COMMAND", "IFS", "CDPATH", "GLOBIGNORE",  # the shell
    "GCONV_PATH", "LOCPATH", "NLSPATH", "HOSTALIASES", "RESOLV_HOST_CONF", "GLIBC_TUNABLES",  # the C library
    "MALLOC_CHECK_", "MALLOC_PERTURB_",
    "OPENSSL_CONF", "OPENSSL_ENGINES", "OPENSSL_MODULES",  # OpenSSL loads modules its config names
})


def check_sandbox_env(env: Mapping[str, str]) -> None:
    """Refuse `--e2b-env` variables that could run code in the sandbox before the bundle is verified."""
    for name in sorted(env):
        if not _ENV_NAME.match(name):
            raise InputError(f"--e2b-env {name!r} is not a valid variable name",
                             hint="use letters, digits and '_', not starting with a digit")
        if name in REFUSED_ENV_NAMES or name.startswith(REFUSED_ENV_PREFIXES):
            raise InputError(
                f"--e2b-env {name} is refused: it could change which code the sandbox runs before the bundle is "
                "verified (the worker runs as an isolated `python -I`)",
                hint="drop it; use --sandbox-python for the interpreter and --e2b-install-deps for packages")
        if "\0" in env[name]:
            raise InputError(f"--e2b-env {name} contains a NUL character", hint="remove it")
