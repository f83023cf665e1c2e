#!/usr/bin/env bash
# Install headless Chromium and its driver from the operating system's packages (for the
# real-browser dashboard test). Does nothing when they are already there.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != "0" ] && ! command -v sudo >/dev/null 2>&1; then
  echo "install-browser: need root (or sudo) to apt-get install chromium chromium-driver" >&2
  exit 1
fi
SUDO=""; [ "$(id -u)" != "0" ] && SUDO="sudo"
echo "install-browser: installing chromium and chromium-driver from the OS packages"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
