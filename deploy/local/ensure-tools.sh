#!/usr/bin/env bash
# Make sure the tools the tests need beyond Python are here: promtool (Debian package `prometheus`)
# for the deploy/ checks, and Chromium (Debian package `chromium`) for the web pages' browser tests.
# Installs them with apt-get when run as root; otherwise says what to run (the tests then skip the
# promtool checks and the browser tests with that reason). kubectl/kustomize, kubernetes-validate
# and Playwright (driving the system Chromium; never `playwright install`) come with the Python
# test extras (pyproject.toml).
set -euo pipefail
missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ "${#missing[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing ${missing[*]} with apt-get ..."
  apt-get update -qq
  # --no-install-recommends: only the binaries; policy-rc.d keeps the daemon from starting where it is honoured.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  command -v promtool >/dev/null 2>&1 || { echo "apt-get installed prometheus but promtool is not on PATH" >&2; exit 1; }
  command -v chromium >/dev/null 2>&1 || { echo "apt-get installed chromium but it is not on PATH" >&2; exit 1; }
else
  echo "missing and this user cannot install them: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  echo "(the promtool checks and the browser tests of make test are skipped until then)" >&2
fi
