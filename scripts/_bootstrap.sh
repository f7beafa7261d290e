# Sourced by scripts/demo, scripts/test and scripts/bench: make .venv and install the project.
# Usage: bootstrap [EXTRAS]   e.g. bootstrap test
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

find_python() {
  for candidate in "${PYTHON:-}" python3 python3.13 python3.12 python3.11 python3.10 python; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "compassion-audio needs Python 3.10 or newer (set PYTHON=/path/to/python3)" >&2
  return 1
}

bootstrap() {
  local extras="${1:-}" spec="." stamp
  [ -n "$extras" ] && spec=".[$extras]"
  if [ ! -x .venv/bin/python ]; then
    echo "Creating .venv ..." >&2
    "$(find_python)" -m venv .venv
  fi
  stamp=".venv/.installed-${extras:-base}"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "Installing compassion-audio${extras:+ with [$extras]} into .venv (first run takes a minute) ..." >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec"
    touch "$stamp"
  fi
}
