#!/usr/bin/env bash
# Installs the Debian 12 packages asio-xmpp needs. Idempotent, and silent when
# everything is present.  Usage: scripts/setup.sh [core|test]
#   core: build the library, tools and benchmarks
#   test: core + what the test suites and sanitizer/fuzz builds need
set -euo pipefail
profile=${1:-core}

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
[ "$profile" = test ] && pkgs+=("${testing[@]}")

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
