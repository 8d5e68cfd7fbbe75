#!/usr/bin/env python3
"""Export the Pex lock into the file the sandbox installs from: `osiris_remote/locked_requirements.json`.

    python3 build-support/lock/export_lock.py           # after every `pants generate-lockfiles`
    python3 build-support/lock/export_lock.py --check   # exit 1 if the JSON is out of date

`--e2b-install-deps` pip-installs, inside the sandbox, the locked versions of the projects a manifest needs,
hash-checked. The JSON holds, per project (normalized name): the locked `version`, the sha256 of every artifact
of that version (each platform's wheel and the sdist; pip picks the wheel that fits the sandbox), `requires`
(its dependencies, with the extras it asks of them: `httpx[http2]`) and `extras` (what each of its own extras
adds). Requirements that hold only under an extra are not in `requires`. Sorted, so the same lock always
gives the same bytes; tests/remote/test_install_deps.py fails while the two disagree.

(Not in build-support/ itself: Pants reads every build-support/*.py as a BUILD prelude, where imports are
banned.) Standard library only.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCK = Path("3rdparty/python/default.lock")
OUTPUT = Path("src/python/osiris_remote/locked_requirements.json")

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?")
_EXTRA_MARKER = re.compile(r"""\bextra\s*==\s*["']([^"']+)["']""")


def normalize(name: str) -> str:
    """PEP 503/685 normalized project or extra name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_requirement(text: str) -> tuple[str, list[str], list[str]]:
    """`name[extras] spec; marker` → (name, extras it asks for, extras of the dependent its marker needs)."""
    requirement, _, marker = text.partition(";")
    match = _REQUIREMENT.match(requirement)
    if match is None:
        raise ValueError(f"cannot parse requirement {text!r}")
    wanted = sorted({normalize(e.strip()) for e in (match.group(2) or "").split(",") if e.strip()})
    return normalize(match.group(1)), wanted, sorted({normalize(e) for e in _EXTRA_MARKER.findall(marker)})


def lock_document(lock_text: str) -> dict[str, Any]:
    """The JSON of a Pex lock as Pants writes it (after its leading `//` comment lines)."""
    body = "\n".join(line for line in lock_text.splitlines() if not line.lstrip().startswith("//"))
    document = json.loads(body)
    assert isinstance(document, dict)
    return document


def export(lock_text: str) -> dict[str, dict[str, Any]]:
    """The locked-requirements document for a Pex lock's text."""
    resolves = lock_document(lock_text)["locked_resolves"]
    if len(resolves) != 1:
        raise ValueError(f"expected one locked resolve, found {len(resolves)}")
    projects: dict[str, dict[str, Any]] = {}
    for locked in resolves[0]["locked_requirements"]:
        name = normalize(locked["project_name"])
        artifacts = locked["artifacts"]
        if not artifacts or any(a["algorithm"] != "sha256" for a in artifacts):
            raise ValueError(f"{name}: every locked artifact needs a sha256 hash")
        requires: set[str] = set()
        extras: dict[str, set[str]] = {}
        for text in locked.get("requires_dists", []):
            dependency, asked, only_with = parse_requirement(text)
            entry = dependency + (f"[{','.join(asked)}]" if asked else "")
            for extra in only_with:
                extras.setdefault(extra, set()).add(entry)
            if not only_with:
                requires.add(entry)
        projects[name] = {
            "version": str(locked["version"]),
            "hashes": sorted({str(a["hash"]) for a in artifacts}),
            "requires": sorted(requires),
            "extras": {extra: sorted(extras[extra]) for extra in sorted(extras)},
        }
    return dict(sorted(projects.items()))


def render(document: dict[str, dict[str, Any]]) -> str:
    return json.dumps(document, indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="only report whether the JSON is up to date")
    args = parser.parse_args(argv)
    text = render(export((REPO_ROOT / LOCK).read_text(encoding="utf-8")))
    output = REPO_ROOT / OUTPUT
    current = output.read_text(encoding="utf-8") if output.is_file() else None
    if args.check:
        if current != text:
            print(f"{OUTPUT} is out of date: run python3 build-support/lock/export_lock.py", file=sys.stderr)
            return 1
        return 0
    if current != text:
        output.write_text(text, encoding="utf-8")
    print(f"{OUTPUT}: {len(json.loads(text))} projects from {LOCK}" + ("" if current != text else " (unchanged)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
