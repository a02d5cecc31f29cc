#!/usr/bin/env bash
# Installs the build into a scratch prefix, builds test/install/consumer.cpp
# with nothing but pkg-config, and runs it.
set -euo pipefail
build=$1 src=$2
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
meson install -C "$build" --destdir "$dest" --no-rebuild --quiet >/dev/null
pc=$(find "$dest" -name asio-xmpp.pc | head -n1)
[ -n "$pc" ] || { echo "no asio-xmpp.pc installed"; exit 1; }
# Relocate: point our .pc (only ours) at the scratch copy of the prefix.
sed -i "s|^prefix=|prefix=$dest|" "$pc"
export PKG_CONFIG_PATH=$(dirname "$pc")
flags=$(pkg-config --cflags --libs asio-xmpp)
echo "pkg-config: $flags"
${CXX:-c++} -std=c++20 "$src" $flags -o "$dest/consumer"
libdir=$(dirname "$(dirname "$pc")")
LD_LIBRARY_PATH=$libdir "$dest/consumer"
