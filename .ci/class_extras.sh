#!/usr/bin/env bash
# The class extras (docs/class.md) into a venv: JupyterHub (requirements-class.txt) and configurable-http-proxy
# (npm). Usage: .ci/class_extras.sh VENV [pip args, e.g. -c constraints.txt]. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$1; shift
if ! command -v npm >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq nodejs npm >/dev/null
fi
command -v configurable-http-proxy >/dev/null || npm install -g --silent configurable-http-proxy >/dev/null
"$venv/bin/pip" install -q -r requirements-class.txt "$@"
