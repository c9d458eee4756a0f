# Sourced by the scripts in this folder: makes .venv (Python 3.11+) and installs the project into it
# whenever pyproject.toml changed since the last install. Needs only python3 and pip.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
py="${PYTHON:-python3}"
if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "wiz-pipeline needs Python 3.11 or newer; '$py' is $("$py" --version 2>&1). Set PYTHON=/path/to/python3.11." >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv" >&2
    "$py" -m venv .venv
fi
stamp=".venv/.wiz-pipeline-installed"
want="$(cat pyproject.toml | "$py" -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "==> installing wiz-pipeline and its dependencies into .venv (first run takes a minute)" >&2
    if ! .venv/bin/python -m pip install --disable-pip-version-check -e '.[dev]' > .venv/pip-install.log 2>&1; then
        tail -n 30 .venv/pip-install.log >&2
        echo "pip install failed; the full log is in .venv/pip-install.log" >&2
        exit 1
    fi
    echo "$want" > "$stamp"
fi
export PATH="$root/.venv/bin:$PATH"
