#!/usr/bin/env bash
# The demo: a SoftHSM token in demo/, a root CA and a server key generated inside it, a client
# certificate for curl, a small backend, and the gateway in the foreground with a one-way listener
# on 8443, a two-way listener on 9444 and a two-way HTTPS listener on 9443. Run again, it reuses what it made; `make demo-clean` removes it.
#
#   tests/demo/demo.sh PATH/TO/hsmgate     run the demo
#   tests/demo/demo.sh --stop              stop a demo running in the background
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
demo="$top/demo"

if [ "${1:-}" = "--stop" ]; then
  for p in "$demo/backend.pid" "$demo/hsmgate.pid"; do
    [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true
  done
  exit 0
fi

bin=${1:?usage: demo.sh PATH/TO/hsmgate}
module=/usr/lib/softhsm/libsofthsm2.so
export SOFTHSM2_CONF="$demo/softhsm2.conf"
mkdir -p "$demo/tokens"
chmod 700 "$demo"

if [ ! -f "$demo/.provisioned" ]; then
  echo "demo: provisioning a SoftHSM token and a PKI in $demo"
  rm -rf "$demo/tokens"/* "$demo"/*.pem "$demo"/*.crt "$demo"/*.key "$demo"/*.csr
  printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$demo/tokens" > "$SOFTHSM2_CONF"
  # Demo PINs: a real deployment takes them from a secrets store (docs/operations.md).
  umask 077
  head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$demo/hsm.pin"
  head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$demo/so.pin"
  umask 022
  softhsm2-util --init-token --free --label hsmgate --so-pin "$(cat "$demo/so.pin")" --pin "$(cat "$demo/hsm.pin")" >/dev/null
  hsm=(--module "$module" --pin "file:$demo/hsm.pin")
  "$bin" pki keygen "${hsm[@]}" --token-uri "pkcs11:token=hsmgate" --label root --type ec:P-256 >/dev/null
  "$bin" pki keygen "${hsm[@]}" --token-uri "pkcs11:token=hsmgate" --label server --type ec:P-256 >/dev/null
  "$bin" pki root "${hsm[@]}" --key "pkcs11:token=hsmgate;object=root;type=private" \
      --subject "/CN=hsmgate demo root CA/O=hsmgate demo" --out "$demo/root-ca.pem"
  "$bin" pki server "${hsm[@]}" --ca-key "pkcs11:token=hsmgate;object=root;type=private" --ca-cert "$demo/root-ca.pem" \
      --key "pkcs11:token=hsmgate;object=server;type=private" --subject "/CN=localhost/O=hsmgate demo" \
      --san DNS:localhost --san IP:127.0.0.1 --chain --out "$demo/server-chain.pem"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$demo/client.key" \
      -out "$demo/client.csr" -subj "/CN=demo-client/O=Example Bank" 2>/dev/null
  "$bin" pki client "${hsm[@]}" --ca-key "pkcs11:token=hsmgate;object=root;type=private" --ca-cert "$demo/root-ca.pem" \
      --csr "$demo/client.csr" --out "$demo/client.crt"
  chmod 600 "$demo/client.key"
  cat > "$demo/hsmgate.yaml" <<EOT
# hsmgate demo configuration (made by tests/demo/demo.sh)
hsm: { module: $module, pin: "file:$demo/hsm.pin" }
log: { level: info, access_log: "$demo/access.log" }
pid_file: $demo/hsmgate.pid
policy_store: $demo/policy.db
listeners:
  - name: public
    type: tcp
    bind: 127.0.0.1:8443
    auth: one-way
    certificate: $demo/server-chain.pem
    key: "pkcs11:token=hsmgate;object=server;type=private"
    backends: [127.0.0.1:7000]
  - name: payments
    type: tcp
    bind: 127.0.0.1:9444
    auth: two-way
    certificate: $demo/server-chain.pem
    key: "pkcs11:token=hsmgate;object=server;type=private"
    client_ca: $demo/root-ca.pem
    backends: [127.0.0.1:7000]
  - name: payments-https
    type: https
    bind: 127.0.0.1:9443
    auth: two-way
    certificate: $demo/server-chain.pem
    key: "pkcs11:token=hsmgate;object=server;type=private"
    client_ca: $demo/root-ca.pem
    backends: [127.0.0.1:7000]
EOT
  touch "$demo/.provisioned"
else
  echo "demo: reusing the token and PKI in $demo"
fi
if ! grep -q 9443 "$demo/hsmgate.yaml"; then
  echo "demo: this demo/ predates the HTTPS listener; run 'make demo-clean' and 'make demo' to get it" >&2
fi

if ! grep -q '^admin:' "$demo/hsmgate.yaml"; then
  # the admin API, with one admin token (the file keeps only its SHA-256; the token is in demo/admin.token)
  umask 077
  "$bin" admin token demo-admin admin --line-only > "$demo/admin.tokens" 2> "$demo/admin.token"
  umask 022
  printf 'admin: { bind: "127.0.0.1:9440", tokens_file: "%s/admin.tokens", ca_certificate: "%s/root-ca.pem", ca_key: "pkcs11:token=hsmgate;object=root;type=private" }\n' \
      "$demo" "$demo" >> "$demo/hsmgate.yaml"
fi
if ! grep -q '^policy_store:' "$demo/hsmgate.yaml"; then
  # a demo/ made before the policy store existed: give it one (a top-level key may follow the list)
  printf 'policy_store: %s/policy.db\n' "$demo" >> "$demo/hsmgate.yaml"
fi

"$bin" check -c "$demo/hsmgate.yaml"

/usr/bin/python3 "$top/tests/demo/backend.py" 7000 2>>"$demo/backend.log" &
echo $! > "$demo/backend.pid"
trap 'kill "$(cat "$demo/backend.pid")" 2>/dev/null || true; rm -f "$demo/backend.pid"' EXIT

cat <<EOT

hsmgate demo: the server key and the root CA key live in the SoftHSM token in demo/tokens.
Try, from another terminal in $top:

  # one-way TLS (only the server proves itself):
  curl --cacert demo/root-ca.pem https://localhost:8443/hello

  # two-way (mutual) TLS: the client certificate issued by the HSM-held root CA:
  curl --cacert demo/root-ca.pem --cert demo/client.crt --key demo/client.key https://localhost:9444/pay

  # two-way HTTPS: the backend echoes the identity headers the gateway added (Client-Cert, X-Client-Cert-*):
  curl --cacert demo/root-ca.pem --cert demo/client.crt --key demo/client.key https://localhost:9443/

  # a forged identity header never reaches the backend:
  curl --cacert demo/root-ca.pem --cert demo/client.crt --key demo/client.key -H 'X-Client-Cert-Subject: CN=admin' https://localhost:9443/

  # the same without a client certificate is refused:
  curl --cacert demo/root-ca.pem https://localhost:9444/pay

  # the handshake in detail:
  openssl s_client -connect 127.0.0.1:9444 -CAfile demo/root-ca.pem -cert demo/client.crt -key demo/client.key -brief

  # put the client's certificate on hold: the next handshake is refused, an open connection closes;
  # then lift the hold and it gets in again (the store is demo/policy.db; the gateway follows it)
  $bin revoke --store demo/policy.db --cert demo/client.crt --reason certificateHold
  curl --cacert demo/root-ca.pem --cert demo/client.crt --key demo/client.key https://localhost:9443/
  $bin revoke --lift --store demo/policy.db --cert demo/client.crt
  $bin verify -c demo/hsmgate.yaml --listener payments demo/client.crt

  # the admin API (token in demo/admin.token; no token needed for health and metrics):
  curl -s http://127.0.0.1:9440/v1/health
  curl -s http://127.0.0.1:9440/metrics | grep hsmgate_handshakes_total
  curl -s -H "Authorization: Bearer \$(cat demo/admin.token)" http://127.0.0.1:9440/v1/listeners
  curl -s -H "Authorization: Bearer \$(cat demo/admin.token)" http://127.0.0.1:9440/v1/audit
  curl -s http://127.0.0.1:9440/crl.pem | openssl crl -noout -text | head   # our root's CRL, signed in the HSM
  HSMGATE_TOKEN_FILE=demo/admin.token $top/build/release/hsmgatectl status

  # one JSON line per connection (per request on the HTTPS listener, with method, path, status, upstream_ms):
  tail -f demo/access.log

Ctrl-C stops the gateway and the backend. 'make demo-clean' removes demo/.

EOT
# `make demo` runs as root on a fresh machine; the demo's files are root's, so it stays root (a real
# deployment sets user: instead: docs/operations.md).
root_opt=()
[ "$(id -u)" -eq 0 ] && root_opt=(--allow-root)
"$bin" run -c "$demo/hsmgate.yaml" "${root_opt[@]}"
