#!/usr/bin/env bash
# Install the PostgreSQL server from the operating system's packages (the audit-store tests
# start a throwaway cluster with its initdb / pg_ctl). Does nothing when it is already there.
set -euo pipefail
if compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null && id postgres >/dev/null 2>&1; then
  exit 0
fi
exec bash "$(dirname "$0")/apt-install.sh" install-postgres postgresql
