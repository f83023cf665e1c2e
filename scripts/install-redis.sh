#!/usr/bin/env bash
# Install the Redis server from the operating system's packages (the online-store and the
# Celery-executor tests start a throwaway redis-server). Does nothing when it is already there.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
exec bash "$(dirname "$0")/apt-install.sh" install-redis redis-server
