#!/usr/bin/env bash
# Print the Python (>= 3.11) to build a virtualenv with: the app's (Makefile) and the benchmark peer's
# (bench/peer/setup.sh), so that both run on the same interpreter.
#
#   1. $PYTHON, if set;
#   2. the distribution's /usr/bin/python3.11, if it can make a virtualenv (Debian: python3.11-venv). Debian builds
#      it with profile-guided and link-time optimisation; an interpreter built without them (pyenv's default
#      build, say) spent about 20 % more CPU on every request here (issue 9, bench/RESULTS.md);
#   3. python3.11 on PATH, then python3 if it is 3.11 or newer.
# Exits 1 with a message when none is found.
set -euo pipefail

usable() {  # a Python >= 3.11 that has venv with ensurepip (Debian ships ensurepip in pythonX.Y-venv)
    "$1" -c 'import sys, ensurepip, venv; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1
}

if [[ -n "${PYTHON:-}" ]]; then
    command -v "$PYTHON" || { echo "error: PYTHON=$PYTHON not found" >&2; exit 1; }
    exit 0
fi
for candidate in /usr/bin/python3.11 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && usable "$candidate"; then
        command -v "$candidate"
        exit 0
    fi
done
echo "error: Python >= 3.11 with venv is required (python3.11 not found, python3 too old or missing)" >&2
exit 1
