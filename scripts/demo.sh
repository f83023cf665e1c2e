#!/usr/bin/env bash
# The one-command demo: simulate the ecosystem, then run the pipeline on it.
set -euo pipefail
UV=${UV:-$(command -v uv || echo "$PWD/.tools/bin/uv")}
"$UV" run yidai simulate --preset demo
"$UV" run yidai ingest
