# Sourced by scripts/serve and scripts/test: a project-local virtualenv with pinned requirements.

PYTHON=${PYTHON:-python3}

ensure_venv() {
  local requirements=$1
  if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "chatapp needs Python 3.11 or newer; $PYTHON is $("$PYTHON" --version 2>&1 || echo missing)." >&2
    echo "Install it, or point PYTHON at one: PYTHON=python3.12 $0" >&2
    exit 1
  fi
  if [ ! -x .venv/bin/python ]; then
    if ! "$PYTHON" -m venv .venv 2>/dev/null; then
      # Debian's python3 ships venv separately.
      as_root apt-get update -qq && as_root apt-get install -y -qq python3-venv >/dev/null
      "$PYTHON" -m venv .venv
    fi
  fi
  .venv/bin/python -m pip install -q --disable-pip-version-check -r "$requirements"
}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}
