#!/usr/bin/env bash
# apt-get install the given OS packages, as root or through sudo (used by the install-*.sh
# scripts once they have found something missing). Usage: apt-install.sh LABEL PACKAGE...
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: apt-install.sh LABEL PACKAGE..." >&2
  exit 2
fi
label=$1; shift
if [ "$(id -u)" != "0" ] && ! command -v sudo >/dev/null 2>&1; then
  echo "$label: need root (or sudo) to apt-get install $*" >&2
  exit 1
fi
SUDO=""; [ "$(id -u)" != "0" ] && SUDO="sudo"
echo "$label: installing $* from the OS packages"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
