"""The first thing that runs in a sandbox: unpack the bundle, verify every file, then start the worker.

It is sent by the host as command text (not taken from the bundle), uses only the standard library, and
refuses — naming the files — when the bundle is not the one the host sent or a file differs from the
bundle's manifest. Only then does it exec the worker from the verified files.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

BOOTSTRAP_SOURCE = r'''
import hashlib, json, os, shutil, sys, zipfile
MARK = "\x1eosiris "
def say(kind, payload):
    sys.stdout.write(MARK + json.dumps({"kind": kind, "payload": payload}) + "\n")
    sys.stdout.flush()
bundle_zip, target = sys.argv[1], sys.argv[2]
data = open(bundle_zip, "rb").read()
expected = os.environ.get("OSIRIS_BUNDLE_SHA256", "")
actual = hashlib.sha256(data).hexdigest()
if actual != expected:
    say("bundle_rejected", {"reason": "the uploaded bundle is not the one the host sent", "files": [bundle_zip],
                            "expected": expected, "actual": actual})
    sys.exit(3)
shutil.rmtree(target, ignore_errors=True)
with zipfile.ZipFile(bundle_zip) as archive:
    archive.extractall(target)
manifest = json.load(open(os.path.join(target, "osiris_bundle.json")))["files"]
present = set()
for root, _, names in os.walk(target):
    for name in names:
        path = os.path.relpath(os.path.join(root, name), target).replace(os.sep, "/")
        if path != "osiris_bundle.json":
            present.add(path)
bad = sorted(p for p in present | set(manifest)
             if p not in manifest or p not in present
             or hashlib.sha256(open(os.path.join(target, p), "rb").read()).hexdigest() != manifest[p])
if bad:
    say("bundle_rejected", {"reason": "files differ from the bundle manifest", "files": bad})
    sys.exit(3)
say("bundle_verified", {"bundle_sha256": actual, "files": len(manifest)})
path = [os.path.abspath(target), os.environ.get("OSIRIS_DEPS_DIR")]
env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in path if p))
os.execve(sys.executable, [sys.executable, "-m", "osiris_remote.worker", *sys.argv[3:]], env)
'''


def bootstrap_command(python: str, bundle_zip: str, target_dir: str, worker_args: Sequence[str]) -> str:
    """The shell command that verifies the bundle and starts the worker with `worker_args`."""
    words = [python, "-c", BOOTSTRAP_SOURCE, bundle_zip, target_dir, *worker_args]
    return " ".join(shlex.quote(w) for w in words)
