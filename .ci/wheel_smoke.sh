#!/usr/bin/env bash
# Installs the four built wheels into a fresh venv and runs `osiris compile` + `osiris run --last-compile`
# on the embedded demo there, outside the repository.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python="${OSIRIS_SMOKE_PYTHON:-$(command -v python3.11 || command -v python3)}"
"$python" -m venv "$work/venv"
PIP_CONFIG_FILE=/dev/null "$work/venv/bin/pip" install --quiet --disable-pip-version-check \
  "$repo"/dist/osiris_core-*.whl "$repo"/dist/osiris_drivers-*.whl \
  "$repo"/dist/osiris_remote-*.whl "$repo"/dist/osiris_cli-*.whl
cp -r "$repo/examples" "$work/examples"
cd "$work"
"$work/venv/bin/osiris" components list
"$work/venv/bin/osiris" compile examples/movies_local.yaml
"$work/venv/bin/osiris" run --last-compile
test -s output/director_stats.csv
# The installed code and the Pants-built bundle are the same bytes: the host refuses any difference.
"$work/venv/bin/osiris" parity examples/movies_local.yaml --bundle "$repo/dist/osiris_bundle.zip"
# Entry points against installed wheels: a third-party component package adds a component.
PIP_CONFIG_FILE=/dev/null "$work/venv/bin/pip" install --quiet --disable-pip-version-check --no-deps \
  "$work/examples/plugin"
components="$("$work/venv/bin/osiris" components list)"
grep -q '^example.sequence' <<<"$components"
"$work/venv/bin/osiris" run examples/plugin/pipeline.yaml
test "$(cat output/numbers.csv)" = "$(printf 'n\n10\n11\n12\n13\n14')"
# ...and runs in the sandbox too: the bundle carries the plugin's package, the worker loads it from there.
"$work/venv/bin/osiris" parity examples/plugin/pipeline.yaml
# `osiris init` ships its skeleton as package data: the sample pipeline runs from the installed wheel.
"$work/venv/bin/osiris" init "$work/project"
(cd "$work/project" && "$work/venv/bin/osiris" run pipelines/director_stats.yaml && test -s output/director_stats.csv)
echo "wheel smoke test: ok"
