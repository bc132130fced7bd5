#!/usr/bin/env bash
# Installs axe-core (the accessibility engine the browser tests inject into the page) from npm, at the version
# tests/js/package-lock.json pins, into tests/js/node_modules. Idempotent; needs node and npm
# (apt-get install -y nodejs npm).
set -euo pipefail
JS="$(cd "$(dirname "${BASH_SOURCE[0]}")/../tests/js" && pwd)"
if [ -f "$JS/node_modules/axe-core/axe.min.js" ]; then
  exit 0
fi
if ! command -v npm >/dev/null; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm
fi
npm ci --prefix "$JS" --no-audit --no-fund --loglevel=error
