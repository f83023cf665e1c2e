#!/usr/bin/env bash
# Install headless Chromium and its driver from the operating system's packages (for the
# real-browser dashboard test), and a CJK font so the pages' 逸贷 / 网贷通 / e支付 show in
# screenshots. Does nothing when they are already there.
set -euo pipefail
missing=()
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  missing+=(chromium chromium-driver)
fi
if command -v fc-list >/dev/null 2>&1 && [ -z "$(fc-list :lang=zh 2>/dev/null)" ]; then
  missing+=(fonts-wqy-microhei)
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
exec bash "$(dirname "$0")/apt-install.sh" install-browser "${missing[@]}"
