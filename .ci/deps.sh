#!/usr/bin/env bash
# Installs, from Debian's archive, whatever the build, the tests and the demo need and the machine lacks.
# Run as root (or with sudo available). Does nothing when everything is present.
set -euo pipefail

pkgs=(
  gcc make pkg-config                      # build
  autoconf automake libtool dpkg-dev       # building Debian's wolfssl source package (autoreconf, dpkg-source)
  debian-archive-keyring ca-certificates   # verifying that source package
  libp11-kit-dev p11-kit                   # PKCS#11 module loading and RFC 7512 URIs
  softhsm2                                 # the HSM of the tests and the demo
  libyaml-dev                              # configuration
  libjansson-dev                           # JSON (access log, admin API)
  libcmocka-dev                            # unit tests
  python3 python3-pytest                   # integration tests
  openssl curl                             # real TLS clients in the tests and the demo
  libssl-dev                               # the benchmark load generator (OpenSSL: independent of the server)
  procps psmisc                            # pgrep/ps in the test harness
  haproxy                                  # a real PROXY v2 consumer (accept-proxy) in the tests
  libsqlite3-dev                           # the policies store
  libhttp-parser-dev                       # HTTP/1.1 parsing on https listeners
  libmicrohttpd-dev                        # the admin REST API
  libcurl4-openssl-dev                     # hsmgatectl, the admin API's command-line client
)
[ "${WOLFSSL:-local}" = system ] && pkgs+=(libwolfssl-dev)

missing=()
for p in "${pkgs[@]}"; do
  st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$st" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps.sh: installing from Debian: ${missing[*]}" >&2
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps.sh: missing packages (${missing[*]}) and not root: run 'make deps' as root" >&2; exit 1; }
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q >&2
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
