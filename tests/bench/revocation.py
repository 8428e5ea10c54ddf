"""Revocation scenarios (hsmgate only: the peers have no live revocation store to compare with).

  revocation_scale    full-handshake rate with 0, 100,000 and 1,000,000 revoked serials loaded (the serials
                      are revoked under the bench client's own CA, so every handshake probes that issuer's set)
  revocation_latency  a revocation POSTed to the admin API: from its 201 (acknowledged: on disk) to the first
                      refused handshake of that client, and to the closing of that client's live connection
"""
import json
import os
import socket
import ssl
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request

import compare
import peers
from conftest import free_port, run


def pct(values, q):
    v = sorted(values)
    if not v:
        return float("nan")
    k = (len(v) - 1) * q / 100.0
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def scenario_revocation_scale(ctx, results):
    pki, tmp, client = ctx["pki"], ctx["tmp"], ctx["client"]
    runs, seconds, conc = ctx["runs"], ctx["seconds"], ctx["concurrency"]
    counts = (0, 100000, 1000000)
    srvs = {}
    try:
        for n in counts:
            store = tmp / f"revoked-{n}.db"
            run([str(ctx["bin"]["pol_fill"]), "--store", str(store), "--issuer-cert", str(pki.root), "--count", str(n),
                 "--seed", "1", "--except-cert", str(client[0])], timeout=900)
            srv = peers.make(compare.HSM, tmp / f"revoked-{n}-gw", ctx, "ec256", policy_store=f'"{store}"')
            srv.start()
            srvs[n] = srv
        for srv in srvs.values():
            compare.loadgen(ctx, srv.ports["tcp"], 1, conc)  # warm-up
        samples = {n: [] for n in counts}
        for i in range(runs):  # in alternation, so drift in background load hits every store alike
            for n in (counts if i % 2 == 0 else counts[::-1]):
                samples[n].append(compare.measure(ctx, srvs[n], "tcp", seconds, conc))
                r = samples[n][-1]
                print(f"  revocation_scale | {n} revoked | run {i + 1}: {r['rate_per_s']:.0f}/s, "
                      f"{r['cpu_us_per_op']:.0f} us/handshake, errors {r['errors']['total']}", file=sys.stderr)
        name = "revocations_full_handshake_tls13_p256_mtls"
        for n in counts:
            system = f"hsmgate ({n:,} revoked)"
            s = samples[n]
            results.append(compare.summarise(name, system, "handshakes_per_s", "1/s", [r["rate_per_s"] for r in s]))
            results.append(compare.summarise(name, system, "server_cpu_per_handshake", "us",
                                             [r["cpu_us_per_op"] for r in s]))
            results.append(compare.summarise(name, system, "errors", "", [sum(r["errors"]["total"] for r in s)]))
        base = statistics.median(r["rate_per_s"] for r in samples[0])
        for n in counts[1:]:
            ratio = statistics.median(r["rate_per_s"] for r in samples[n]) / base if base else float("nan")
            results.append(compare.summarise("revocations_rate_ratio", f"hsmgate ({n:,} revoked / none)", "rate_ratio",
                                             "", [ratio]))
    finally:
        for srv in srvs.values():
            srv.stop()
        for n in counts:
            for f in tmp.glob(f"revoked-{n}.db*"):
                f.unlink()


def api(port, method, path, token, body, timeout=10):
    """One JSON call to the admin API on 127.0.0.1:port with a bearer token: (status, raw answer)."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method=method,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def admitted(port, sslctx):
    """One full TLS 1.3 handshake and a one-byte echo: True if admitted, False if refused. A refusal of a
    TLS 1.3 client certificate arrives after the client's Finished, so it is the read that sees it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            with sslctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(b"x")
                return s.recv(1) == b"x"
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
            return False


def until_state(port, sslctx, want, t_ack, bound=10.0):
    """Handshakes in a tight loop until the outcome is `want`. Returns (start of that handshake - t_ack, its end
    - t_ack, attempts): the gateway decides mid-handshake, so the change was enforced between the two."""
    n = 0
    while True:
        ts = time.monotonic()
        n += 1
        if admitted(port, sslctx) == want:
            return ts - t_ack, time.monotonic() - t_ack, n
        if ts - t_ack > bound:
            raise SystemExit(f"still {'refused' if want else 'admitted'} {bound} s after the change was acknowledged")


def scenario_revocation_latency(ctx, results):
    pki, tmp = ctx["pki"], ctx["tmp"]
    K = 10 if ctx["quick"] else 40
    r = run([ctx["bin"]["hsmgate"], "admin", "token", "bench", "operator"])
    token, line = r.stdout.decode().strip(), r.stderr.decode().strip()
    tf = tmp / "admin.tokens"
    tf.write_text(line + "\n")
    os.chmod(tf, 0o600)
    aport = free_port()
    store = tmp / "latency.db"
    srv = peers.make(compare.HSM, tmp / "latency-gw", ctx, "ec256", policy_store=f'"{store}"',
                     admin=f'{{ bind: "127.0.0.1:{aport}", tokens_file: "{tf}" }}')
    srv.start()
    victim = pki.client("latency-victim")
    pem = open(victim[0]).read()
    sslctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    sslctx.load_verify_locations(str(pki.root))
    sslctx.minimum_version = sslctx.maximum_version = ssl.TLSVersion.TLSv1_3
    sslctx.load_cert_chain(str(victim[0]), str(victim[1]))
    port = srv.ports["tcp"]
    refused, refused_end, closed, api_ms = [], [], [], []
    try:
        for _ in range(K):
            until_state(port, sslctx, True, time.monotonic())
            live = sslctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                                      server_hostname="localhost")
            live.sendall(b"x")
            assert live.recv(1) == b"x", "live connection not admitted"
            t_closed = []

            def watch():
                live.settimeout(10)
                try:
                    live.recv(1)
                except (ssl.SSLError, OSError):
                    pass
                t_closed.append(time.monotonic())
            th = threading.Thread(target=watch)
            th.start()
            t0 = time.monotonic()
            status, body = api(aport, "POST", "/v1/revocations", token,
                               {"certificate": pem, "reason": "certificateHold", "comment": "bench"})
            t_ack = time.monotonic()
            if status != 201:
                raise SystemExit(f"POST /v1/revocations answered {status}: {body[:300]}")
            api_ms.append((t_ack - t0) * 1000)
            lo, hi, _ = until_state(port, sslctx, False, t_ack)
            th.join(15)
            live.close()
            refused.append(lo * 1000)
            refused_end.append(hi * 1000)
            closed.append((t_closed[0] - t_ack) * 1000 if t_closed else float("inf"))
            status, body = api(aport, "POST", "/v1/revocations/lift", token, {"certificate": pem, "comment": "bench"})
            if status != 200:
                raise SystemExit(f"POST /v1/revocations/lift answered {status}: {body[:300]}")
        print(f"  revocation_latency: refused {[round(x, 1) for x in refused]} ms; closed "
              f"{[round(x, 1) for x in closed]} ms", file=sys.stderr)
    finally:
        srv.stop()
    name = "revocation_api_ack_to_enforcement"
    for what, vals in (("to_refused_handshake", refused), ("to_refused_handshake_end", refused_end),
                       ("to_live_connection_closed", closed), ("api_request", api_ms)):
        results.append(compare.summarise(f"{name}_{what}", compare.HSM, "latency_p99", "ms", [pct(vals, 99)],
                                         p50=pct(vals, 50), p90=pct(vals, 90), n=len(vals), max_=max(vals)))
    ctx["revocation_latency"] = {"refused_ms": refused, "refused_end_ms": refused_end, "closed_ms": closed,
                                 "api_ms": api_ms}
