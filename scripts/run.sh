#!/usr/bin/env bash
# Quick start "run": install what is needed, build, run the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh core
scripts/build.sh build
exec build/tools/xmpp-demo "$@"
