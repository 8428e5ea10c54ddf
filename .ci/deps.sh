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
  python3-jsonschema                       # the admin API's OpenAPI document checked against real answers
  openssl curl                             # real TLS clients in the tests and the demo
  testssl.sh                               # an external TLS scan of a listener in the tests
  libssl-dev                               # the benchmark load generator (OpenSSL: independent of the server)
  procps psmisc                            # pgrep/ps in the test harness
  haproxy                                  # a real PROXY v2 consumer (accept-proxy) in the tests
  libsqlite3-dev                           # the policies store
  libhttp-parser-dev                       # HTTP/1.1 parsing on https listeners
  libmicrohttpd-dev                        # the admin REST API
  libcurl4-openssl-dev                     # hsmgatectl, the admin API's command-line client
  libsystemd-dev                           # sd_notify: readiness, reloads and the watchdog under systemd
  systemd                                  # systemd-analyze verify on the unit in the tests (no running systemd needed)
  man-db groff-base                        # the man pages rendered in the tests (man -l)
)
[ "${WOLFSSL:-local}" = system ] && pkgs+=(libwolfssl-dev)
# `deps.sh bench` (make bench): the peers the benchmarks compare against and the charts, only these.
if [ "${1:-}" = bench ]; then
  pkgs=(
    nginx libnginx-mod-stream                # nginx, http and stream modules
    haproxy stunnel4                         # the other TLS terminators
    gnuplot-nox                              # PNG charts of the results
  )
fi
# `deps.sh fuzz` (make fuzz): libFuzzer comes with Debian's clang.
[ "${1:-}" = fuzz ] && pkgs=(clang)

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
# The peers' packages would start system services (nginx on port 80): the benchmark runs its own
# instances, so a temporary policy-rc.d (exit 101) keeps the services from starting during the install.
rcd=/usr/sbin/policy-rc.d
if [ "${1:-}" = bench ] && [ ! -e "$rcd" ]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$rcd" >/dev/null
  "${sudo[@]}" chmod 755 "$rcd"
  trap '"${sudo[@]}" rm -f "$rcd"' EXIT
fi
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
