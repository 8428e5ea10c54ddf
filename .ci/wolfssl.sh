#!/usr/bin/env bash
# Builds Debian's own wolfssl source package (trixie) with the assembly options into a local prefix.
# Why: Debian 12's libwolfssl is built without assembly and is 3-60x slower (docs/DESIGN facts, ../shared/DESIGN.md fact 1).
# The source comes through a private deb-src list (the machine's apt sources are not touched) and is verified by apt
# against Debian's signed Release file. A stamp records version and flags, so a second run does nothing.
#
#   .ci/wolfssl.sh PREFIX
set -euo pipefail

prefix=${1:?usage: wolfssl.sh PREFIX}
suite=${WOLFSSL_SUITE:-trixie}
# --disable-postauth ... --disable-mcast: protocol features hsmgate never uses; each adds state to every
# connection (TLS 1.3 post-handshake authentication keeps the handshake arrays, DTLS/QUIC/ECH fields):
# 72 -> 67 KiB per idle connection (docs/benchmarks.md, "Where the time and memory go").
flags="--enable-distro --enable-pkcs11 --enable-intelasm --enable-aesni --enable-sp --enable-sp-asm --enable-pkcallbacks --enable-cryptocb --disable-examples --disable-silent-rules --disable-postauth --disable-dtls --disable-quic --disable-ech --disable-srtp --disable-mcast"
work=$(dirname "$prefix")/wolfssl-src
stamp="$prefix/.hsmgate-stamp"
want="suite=$suite flags=$flags"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -f "$prefix/lib/libwolfssl.a" ]; then
    exit 0
fi

echo "wolfssl.sh: building Debian's wolfssl ($suite) into $prefix (a few minutes, once)" >&2
rm -rf "$work" "$prefix"
mkdir -p "$work/apt/sources" "$work/apt/lists/partial" "$work/apt/cache/archives/partial" "$work/src"
cat > "$work/apt/sources/$suite.sources" <<EOT
Types: deb-src
URIs: ${WOLFSSL_MIRROR:-http://deb.debian.org/debian}
Suites: $suite
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOT
apto=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$work/apt/sources"
      -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache" -o "APT::Sandbox::User=root")
apt-get "${apto[@]}" -q update >&2
(cd "$work/src" && apt-get "${apto[@]}" -q source wolfssl >&2)
srcdir=$(find "$work/src" -mindepth 1 -maxdepth 1 -type d -name 'wolfssl-*' | head -n 1)
[ -n "$srcdir" ] || { echo "wolfssl.sh: apt-get source produced no wolfssl-* directory" >&2; exit 1; }
case "$(basename "$srcdir")" in
    wolfssl-5.7.*) ;;
    *) echo "wolfssl.sh: expected wolfssl 5.7.x, got $(basename "$srcdir")" >&2; exit 1 ;;
esac

cd "$srcdir"
log="$work/build.log"
echo "wolfssl.sh: autoreconf, configure, make (output in $log)" >&2
build() {
  autoreconf -fi
  # shellcheck disable=SC2086
  ./configure --prefix="$prefix" $flags CFLAGS="-O2 -g -fPIC"
  make -j"$(nproc)"
  make install
}
if ! build > "$log" 2>&1; then
  tail -n 40 "$log" >&2
  echo "wolfssl.sh: the wolfssl build failed; full output in $log" >&2
  exit 1
fi
# --enable-distro leaves options.h out of `make install` (Debian ships it separately).
install -m 0644 wolfssl/options.h "$prefix/include/wolfssl/options.h"
echo "$want" > "$stamp"
echo "wolfssl.sh: done: $prefix" >&2
