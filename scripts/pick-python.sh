#!/usr/bin/env bash
# Prints the Python interpreter the virtualenv is made from.
#
# The distribution's CPython first: Debian builds it with profile-guided and
# link-time optimisation, which a plain source build (pyenv's default) lacks; on
# LinkFlow's webhook path the source build spends about a fifth more CPU per
# execution (bench/webhook.py, docs/operations.md). Any interpreter on PATH
# otherwise, as long as it is 3.11 or newer and can make a virtualenv.
set -euo pipefail
for candidate in /usr/bin/python3 python3; do
    if command -v "$candidate" >/dev/null 2>&1 \
        && "$candidate" -c 'import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 11))' \
            >/dev/null 2>&1; then
        echo "$candidate"
        exit 0
    fi
done
echo python3
