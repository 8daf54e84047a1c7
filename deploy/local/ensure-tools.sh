#!/usr/bin/env bash
# Make sure the tools the deploy/ checks need are here: promtool (Debian package `prometheus`).
# Installs it with apt-get when run as root; otherwise says what to run (the tests then skip
# the promtool checks with that reason). kubectl/kustomize and kubernetes-validate come with
# the Python test extras (pyproject.toml).
set -euo pipefail
command -v promtool >/dev/null 2>&1 && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing promtool (Debian package prometheus) with apt-get ..."
  apt-get update -qq
  # --no-install-recommends: only the binaries; policy-rc.d keeps the daemon from starting where it is honoured.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  command -v promtool >/dev/null 2>&1 || { echo "apt-get installed prometheus but promtool is not on PATH" >&2; exit 1; }
else
  echo "promtool is missing and this user cannot install it: sudo apt-get install -y --no-install-recommends prometheus" >&2
  echo "(the promtool checks of make test are skipped until then)" >&2
fi
