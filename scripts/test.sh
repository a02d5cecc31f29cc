#!/usr/bin/env bash
# Quick start "test": install what is needed, build, run every test suite.
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
scripts/build.sh build
status=0
meson test -C build --print-errorlogs --no-rebuild || status=$?
python3 - build/meson-logs/testlog.json <<'PY'
import json, sys
ok = bad = skip = 0
for line in open(sys.argv[1]):
    r = json.loads(line)["result"]
    if r in ("OK", "EXPECTEDFAIL"): ok += 1
    elif r == "SKIP": skip += 1
    else: bad += 1
print(f"tests: {ok} passed, {bad} failed, {skip} skipped")
PY
exit $status
