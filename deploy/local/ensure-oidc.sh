#!/usr/bin/env bash
# Make sure the demo's OpenID Connect provider can run: Node.js and npm (Debian packages `nodejs`,
# `npm`), and the provider's packages (npm `oidc-provider`, pinned by deploy/local/oidc/package-lock.json)
# installed with `npm ci` into deploy/local/oidc/node_modules (again whenever the lock file changes).
# As root it installs Node.js with apt-get when it is missing; otherwise it says what to run, and the
# tests of the provider skip with that reason.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)/oidc"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing nodejs and npm with apt-get ..."
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  else
    echo "Node.js is missing and this user cannot install it: sudo apt-get install -y nodejs npm" >&2
    echo "(the OpenID Connect provider's tests are skipped until then)" >&2
    exit 0
  fi
fi
stamp="$here/node_modules/.package-lock.json"
if [ ! -f "$stamp" ] || [ "$here/package-lock.json" -nt "$stamp" ]; then
  echo "Installing the OpenID Connect provider's packages (npm ci in deploy/local/oidc) ..."
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi
