#!/usr/bin/env bash
# Install headless Chromium and its driver from the operating system's packages (for the
# real-browser dashboard test). Does nothing when they are already there.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
exec bash "$(dirname "$0")/apt-install.sh" install-browser chromium chromium-driver
