#!/usr/bin/env bash
# Create .venv with Python 3.11 and install the project into it (once per pyproject.toml change).
set -euo pipefail
venv="${1:-.venv}"
python="${PYTHON:-$(command -v python3.11 || command -v python3 || true)}"
if [ -z "$python" ] || ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
  echo "Python 3.11 is needed (Debian 12: apt-get install python3). Set PYTHON=/path/to/python3.11 if it is elsewhere." >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  if ! "$python" -m venv "$venv" 2>/dev/null; then
    rm -rf "$venv"
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
      "$python" -m venv "$venv"
    else
      echo "python3 -m venv failed: install the venv module first: sudo apt-get install -y python3-venv" >&2
      exit 1
    fi
  fi
fi
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q -e '.[test]'
touch "$venv/.installed"
