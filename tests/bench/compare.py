"""The comparison scenarios: hsmgate beside nginx, HAProxy and stunnel, one system loaded at a time, the
same load generator and certificates (tests/bench/run.py drives them; peers.py starts the systems).

  full_handshake  full two-way handshakes/s and server CPU per handshake; TLS 1.3 and 1.2, P-256 and RSA-2048
  resume          resumed handshakes/s (TLS 1.3 PSK from tickets, TLS 1.2 tickets), P-256
  keepalive       HTTPS requests/s and latency on keep-alive connections (https listener / http module)
  bulk            MB/s of one TLS 1.3 stream through a tcp listener to an echo, AES-128-GCM and ChaCha20-Poly1305
  idle            resident memory per idle established mutual-TLS connection (fresh server processes)
"""
import json
import statistics
import subprocess
import sys
import time

import peers

HSM = "hsmgate (key in SoftHSM)"
PEM = "hsmgate (key in PEM file)"
PEERS = ("nginx", "HAProxy", "stunnel")
KEYS = {"ec256": "p256", "rsa2048": "rsa2048"}


def summarise(name, system, metric, unit, values, **extra):
    d = {"name": name, "system": system, "metric": metric, "unit": unit, "runs": len(values),
         "min": min(values), "median": statistics.median(values), "max": max(values),
         "value": statistics.median(values)}
    d.update(extra)
    return d


def loadgen_cmd(ctx, port, seconds, concurrency, version="1.3", mode="full", extra=()):
    client, pki = ctx["client"], ctx["pki"]
    return [str(ctx["bin"]["loadgen"]), "--connect", f"127.0.0.1:{port}", "--ca", str(pki.root),
            "--cert", str(client[0]), "--key", str(client[1]), "--servername", "localhost", "--tls", version,
            "--mode", mode, "--concurrency", str(concurrency), "--duration", str(seconds), "--json", *extra]


def loadgen(ctx, port, seconds, concurrency, version="1.3", mode="full", extra=("--echo-bytes", "64")):
    r = subprocess.run(loadgen_cmd(ctx, port, seconds, concurrency, version, mode, extra), capture_output=True,
                       timeout=seconds * 4 + 60)
    for line in reversed(r.stdout.decode().strip().splitlines()):
        try:
            doc = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "successes" in doc:
            if r.stderr:
                doc["stderr"] = r.stderr.decode(errors="replace")[-600:]
            return doc
    raise SystemExit(f"loadgen failed ({r.returncode}): {r.stderr.decode()}")


def cpu_ticks(pids):
    total = 0
    for pid in pids:
        t = peers.cpu.cpu_ticks(pid)
        total += t or 0
    return total


def measure(ctx, srv, kind, seconds, concurrency, version="1.3", mode="full", extra=("--echo-bytes", "64")):
    """One loadgen run against srv's `kind` port; server CPU of all its processes around it."""
    pids = srv.pids()
    c0 = cpu_ticks(pids)
    res = loadgen(ctx, srv.ports[kind], seconds, concurrency, version, mode, extra)
    c1 = cpu_ticks(pids)
    cpu_s = (c1 - c0) / peers.cpu.TICK
    ok = res.get("successes", 0)
    res["server_cpu_s"] = cpu_s
    res["cpu_us_per_op"] = cpu_s * 1e6 / ok if ok else float("nan")
    mb = res.get("bytes", 0) / 1e6
    res["cpu_us_per_mb"] = cpu_s * 1e6 / mb if mb else float("nan")
    if res.get("errors", {}).get("total", 0):
        print(f"  {srv.name}: {res['errors']} {res.get('stderr', '')}", file=sys.stderr)
    return res


def collect(ctx, results, name, system, runs, fn, metrics):
    """runs x fn() (one measure() result each); metrics: [(metric, unit, lambda res: value)]. Errors are
    reported as their own metric (the sum over runs): a failed operation is never a success."""
    samples = []
    for i in range(runs):
        res = fn()
        samples.append(res)
        print(f"  {name} | {system} | run {i + 1}: " + ", ".join(
            f"{m}={f(res):.1f}" for m, _, f in metrics) + f", errors={res['errors']['total']}", file=sys.stderr)
    for metric, unit, f in metrics:
        vals = [f(s) for s in samples]
        results.append(summarise(name, system, metric, unit, vals))
    results.append(summarise(name, system, "errors", "", [sum(s["errors"]["total"] for s in samples)]))
    ctx.setdefault("raw", []).append({"name": name, "system": system, "samples": samples})


def systems(ctx, with_pem=True):
    out = [HSM] + ([PEM] if with_pem else []) + [p for p in PEERS if peers.available(p)]
    return [s for s in out if s in ctx["systems"]]


class Fleet:
    """Every system started once with one server identity, for the scenarios that share them."""

    def __init__(self, ctx, keytype):
        self.ctx, self.keytype, self.servers = ctx, keytype, {}

    def get(self, system):
        if system not in self.servers:
            tag = system.split(" ")[0] + ("-pem" if system == PEM else "")
            srv = peers.make(system, self.ctx["tmp"] / f"{tag}-{self.keytype}-{len(self.ctx.setdefault('n', []))}",
                             self.ctx, self.keytype)
            self.ctx["n"].append(1)
            srv.start()
            self.servers[system] = srv
        return self.servers[system]

    def stop(self):
        for srv in self.servers.values():
            srv.stop()
        self.servers = {}


def scenario_full_handshake(ctx, results):
    runs, seconds, conc = ctx["runs"], ctx["seconds"], ctx["concurrency"]
    for keytype, ktag in KEYS.items():
        fleet = Fleet(ctx, keytype)
        try:
            for version in ("1.3", "1.2"):
                name = f"full_handshake_tls{version.replace('.', '')}_{ktag}_mtls"
                for system in systems(ctx):
                    srv = fleet.get(system)
                    loadgen(ctx, srv.ports["tcp"], 1, conc, version)  # warm-up
                    collect(ctx, results, name, system, runs,
                            lambda: measure(ctx, srv, "tcp", seconds, conc, version),
                            [("handshakes_per_s", "1/s", lambda r: r["rate_per_s"]),
                             ("server_cpu_per_handshake", "us", lambda r: r["cpu_us_per_op"]),
                             ("latency_p99", "ms", lambda r: r["latency_us"]["p99"] / 1000)])
        finally:
            fleet.stop()


def scenario_resume(ctx, results):
    runs, seconds, conc = ctx["runs"], ctx["seconds"], ctx["concurrency"]
    fleet = Fleet(ctx, "ec256")
    try:
        for version in ("1.3", "1.2"):
            name = f"resumed_handshake_tls{version.replace('.', '')}_p256_mtls"
            for system in systems(ctx, with_pem=False):
                srv = fleet.get(system)
                collect(ctx, results, name, system, runs,
                        lambda: measure(ctx, srv, "tcp", seconds, conc, version, "resume"),
                        [("resumed_per_s", "1/s", lambda r: r["rate_per_s"] * r["resumed_fraction"]),
                         ("resumed_fraction", "", lambda r: r["resumed_fraction"]),
                         ("server_cpu_per_handshake", "us", lambda r: r["cpu_us_per_op"])])
    finally:
        fleet.stop()


HTTP_REQ = "GET /bench HTTP/1.1\\r\\nHost: localhost\\r\\nUser-Agent: hsmgate-loadgen\\r\\n\\r\\n"


def scenario_keepalive(ctx, results):
    runs, seconds, conc = ctx["runs"], ctx["seconds"], ctx["concurrency"]
    fleet = Fleet(ctx, "ec256")
    try:
        name = "keepalive_https_tls13_p256_mtls"
        extra = ("--payload", HTTP_REQ, "--expect", "HTTP/1.1 200")
        for system in systems(ctx, with_pem=False):
            srv = fleet.get(system)
            label = system + (" (TCP tunnel)" if system == "stunnel" else "")
            loadgen(ctx, srv.ports["https"], 1, conc, "1.3", "keepalive", extra)  # warm-up
            collect(ctx, results, name, label, runs,
                    lambda: measure(ctx, srv, "https", seconds, conc, "1.3", "keepalive", extra),
                    [("requests_per_s", "1/s", lambda r: r["rate_per_s"]),
                     ("server_cpu_per_request", "us", lambda r: r["cpu_us_per_op"]),
                     ("latency_p50", "ms", lambda r: r["latency_us"]["p50"] / 1000),
                     ("latency_p99", "ms", lambda r: r["latency_us"]["p99"] / 1000),
                     ("latency_p999", "ms", lambda r: r["latency_us"]["p999"] / 1000)])
    finally:
        fleet.stop()


def scenario_bulk(ctx, results):
    runs, seconds = ctx["runs"], ctx["seconds"]
    fleet = Fleet(ctx, "ec256")
    try:
        for cipher, tag in (("TLS_AES_128_GCM_SHA256", "aes128gcm"), ("TLS_CHACHA20_POLY1305_SHA256", "chacha20")):
            name = f"bulk_tcp_tls13_{tag}"
            for system in systems(ctx, with_pem=False):
                srv = fleet.get(system)
                collect(ctx, results, name, system, runs,
                        lambda: measure(ctx, srv, "tcp", seconds, 1, "1.3", "bulk", ("--cipher", cipher)),
                        [("throughput", "MB/s", lambda r: r["mb_per_s"]),
                         ("server_cpu_per_mb", "us", lambda r: r["cpu_us_per_mb"])])
    finally:
        fleet.stop()


def scenario_idle(ctx, results):
    """N idle connections held by `loadgen --mode idle`; RSS of the server's processes (a fresh start, one
    warm-up connection so lazily loaded code and caches are in before 'before') before and after."""
    n = ctx["idle_conns"]
    runs = ctx["runs"]
    name = f"idle_connections_tls13_p256_mtls_{n}"
    for system in systems(ctx, with_pem=False):
        per_conn, totals, idle_errs = [], [], []
        for _ in range(runs):
            fleet = Fleet(ctx, "ec256")
            try:
                srv = fleet.get(system)
                loadgen(ctx, srv.ports["tcp"], 0.5, 2, "1.3")  # warm-up
                time.sleep(0.5)
                before = srv.rss_kb()
                cmd = loadgen_cmd(ctx, srv.ports["tcp"], 600, n, "1.3", "idle",
                                  ("--echo-bytes", "64", "--threads", "2", "--timeout", "60"))
                lg = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                t0 = time.time()
                held = False
                while time.time() - t0 < 300:
                    line = lg.stdout.readline()
                    if not line:
                        break
                    if '"held"' in line:
                        held = True
                        break
                if not held:
                    lg.kill()
                    _, err = lg.communicate()
                    print(f"  idle: {system}: not all {n} connections admitted: {err[-800:]}", file=sys.stderr)
                    results.append(summarise(name, system, "failed", "", [1], note=err[-300:]))
                    break
                time.sleep(1.0)
                after = srv.rss_kb()
                lg.terminate()
                out, err = lg.communicate(timeout=60)
                doc = json.loads(out.strip().splitlines()[-1])
                errs = doc["errors"]["total"]
                per_conn.append((after - before) / n)
                totals.append(after / 1024)
                print(f"  {name} | {system}: RSS {before / 1024:.1f} -> {after / 1024:.1f} MiB, "
                      f"{(after - before) / n:.2f} KiB/conn, loadgen errors {errs}", file=sys.stderr)
                idle_errs.append(errs)
            finally:
                fleet.stop()
        if per_conn:
            results.append(summarise(name, system, "memory_per_connection", "KiB", per_conn))
            results.append(summarise(name, system, "rss_with_connections", "MiB", totals))
            results.append(summarise(name, system, "errors", "", [sum(idle_errs)]))
