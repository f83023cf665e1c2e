#!/usr/bin/env bash
# Install the PostgreSQL server from the operating system's packages (the audit-store tests
# start a throwaway cluster with its initdb / pg_ctl). Does nothing when it is already there.
set -euo pipefail
if compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null && id postgres >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != "0" ] && ! command -v sudo >/dev/null 2>&1; then
  echo "install-postgres: need root (or sudo) to apt-get install postgresql" >&2
  exit 1
fi
SUDO=""; [ "$(id -u)" != "0" ] && SUDO="sudo"
echo "install-postgres: installing postgresql from the OS packages"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
