#!/usr/bin/env bash
# Installs what the browser tests need, once (idempotent): Debian's Chromium and ChromeDriver, then axe-core
# from npm (scripts/install-axe.sh). Playwright drives this Chromium; it never downloads a browser of its own.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ ! -x /usr/bin/chromium ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver
fi
bash "$HERE/install-axe.sh"
