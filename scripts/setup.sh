#!/usr/bin/env bash
# Installs the Debian 12 packages asio-xmpp needs. Idempotent, and silent when
# everything is present.  Usage: scripts/setup.sh [core|test]
#   core: build the library, tools and benchmarks
#   test: core + what the test suites and sanitizer/fuzz builds need, incl.
#         Node.js and the npm packages of test/js/package-lock.json (xmpp.js)
set -euo pipefail
profile=${1:-core}
case "$profile" in core|test) ;; *) echo "usage: $0 [core|test]" >&2; exit 64 ;; esac
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

core=(
  g++ git pkg-config meson ninja-build ccache
  libboost1.81-dev            # Asio, Beast (1.81: Debian's default 1.74 is too old)
  android-libboringssl-dev    # default TLS backend
  libssl-dev                  # OpenSSL 3, the -Dtls=openssl backend
  libpugixml-dev libsasl2-dev libsasl2-modules libicu-dev libc-ares-dev
  catch2 libexpat1-dev        # tests; expat is the benchmark reference
  prosody openssl             # the demo's throwaway server and its certificate
)
testing=(
  clang-14 libclang-rt-14-dev # ASan/UBSan runs and libFuzzer targets
  ejabberd dnsmasq            # integration tests: second server, real DNS with SRV records
  libsasl2-modules-gssapi-mit # Cyrus GSSAPI plugin (the mechanism is offered when it loads)
  sasl2-bin                   # saslpasswd2: the sasl_server test makes a sasldb with it
)
pkgs=("${core[@]}")
if [ "$profile" = test ]; then
  pkgs+=("${testing[@]}")
  # xmpp.js (test/js) runs on Node >= 18: Debian 12's nodejs is 18.x with npm
  # 9.x. A node already on PATH (e.g. a newer one) is kept.
  command -v node >/dev/null || pkgs+=(nodejs)
  command -v npm >/dev/null || pkgs+=(npm)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ "$profile" = test ] || exit 0

# The npm packages of test/js, exactly as test/js/package-lock.json pins them
# (names, versions and integrity hashes; the registry is npm's configured
# one). Skipped while node_modules matches the lock file; install scripts of
# packages never run.
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 18 ]; then
  echo "setup: node $(node --version) is too old for test/js (needs >= 18)" >&2
  exit 1
fi
js="$root/test/js"
stamp="$js/node_modules/.asio-xmpp-setup"
want=$(cat "$js/package.json" "$js/package-lock.json" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: npm ci in test/js (node $(node --version), npm $(npm --version))"
  # @xmpp/client 0.14 declares node >= 20.10; on Node 18 its missing globals
  # are supplied by xmppjs_client.mjs, so the engine check must only warn.
  npm ci --prefix "$js" --ignore-scripts --engine-strict=false \
    --no-audit --no-fund --loglevel=error
  echo "$want" >"$stamp"
fi
