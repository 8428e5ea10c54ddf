#!/usr/bin/python3
"""Benchmark runner: hsmgate with its key in SoftHSM beside hsmgate with its key in a PEM file, same
certificates, same load generator (tests/bench/loadgen.c, on OpenSSL), same machine, same run.

  tests/bench/run.py [--quick] [--out build/bench]

Scenarios so far (the peers nginx/HAProxy/stunnel and the other scenarios join with the benchmarks issue):
  full_handshake  full two-way TLS 1.3 handshakes per second (ECDSA P-256 server key), and server CPU per handshake
  hsm_sign        P-256 signatures per second through the pkcs11 layer, 1 and 2 threads

Each figure is the median of several runs. Server CPU is utime+stime of the server process (all its
threads, SoftHSM included: it runs in-process) from /proc, before and after the run.
"""
import argparse
import json
import os
import pathlib
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from conftest import Gateway, Pki, free_port, run  # noqa: E402  (shared PKI and process helpers)

B = ROOT / "build" / "release"
LOADGEN = B / "tests" / "loadgen"
ECHOD = B / "tests" / "echod"
HSM_BENCH = B / "tests" / "hsm_bench"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def loadgen(port, pki, client, seconds, concurrency, version="1.3", mode="full"):
    cmd = [str(LOADGEN), "--connect", f"127.0.0.1:{port}", "--ca", str(pki.root), "--cert", str(client[0]),
           "--key", str(client[1]), "--servername", "localhost", "--tls", version, "--mode", mode,
           "--concurrency", str(concurrency), "--duration", str(seconds), "--echo-bytes", "64", "--json"]
    r = subprocess.run(cmd, capture_output=True, timeout=seconds * 4 + 60)
    try:
        return json.loads(r.stdout.decode().strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise SystemExit(f"loadgen failed ({r.returncode}): {r.stderr.decode()}")


def measure_gateway(g, pki, client, seconds, concurrency):
    pid = g.proc.pid
    c0 = cpu_seconds(pid)
    res = loadgen(g.port("bench"), pki, client, seconds, concurrency)
    c1 = cpu_seconds(pid)
    ok = max(res.get("successes", 0), 1)
    return {"rate": res.get("rate_per_s", 0.0), "cpu_us": (c1 - c0) * 1e6 / ok,
            "errors": res.get("errors", {}).get("total", 0), "p99_us": res.get("latency_us", {}).get("p99", 0)}


def summarise(name, system, metric, unit, values):
    return {"name": name, "system": system, "metric": metric, "unit": unit, "runs": len(values),
            "min": min(values), "median": statistics.median(values), "max": max(values), "value": statistics.median(values)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "build" / "bench"))
    args = ap.parse_args()
    runs, seconds, concurrency = (1, 5, 32) if args.quick else (3, 10, 32)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for tool in (LOADGEN, ECHOD, HSM_BENCH, B / "hsmgate"):
        if not tool.exists():
            raise SystemExit(f"{tool} is missing: run `make bench-tools all`")

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="hsmgate-bench-"))
    pki = Pki(tmp / "pki")
    client = pki.client("bench")
    # the same server identity with its key in a file, for the comparison
    fkey, fcsr, fcert = tmp / "server-file.key", tmp / "server-file.csr", tmp / "server-file.pem"
    run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(fkey),
         "-out", str(fcsr), "-subj", "/CN=localhost"])
    t = pki.token
    t.pki("client", "--ca-key", t.uri("root"), "--ca-cert", str(pki.root), "--csr", str(fcsr), "--eku", "serverAuth",
          "--san", "DNS:localhost", "--san", "IP:127.0.0.1", "--out", str(fcert))

    echo_port = free_port()
    echod = subprocess.Popen([str(ECHOD), str(echo_port)])
    results = []
    try:
        time.sleep(0.2)
        hsm_uri, hsm_cert = pki.servers["ec256"]
        for system, key, cert in (("hsmgate (key in SoftHSM)", hsm_uri, hsm_cert),
                                  ("hsmgate (key in PEM file)", str(fkey), str(fcert))):
            g = Gateway(tmp / system.replace(" ", "_").replace("(", "").replace(")", ""), t)
            g.tmp.mkdir()
            g.write_config([dict(name="bench", type="tcp", auth="two-way", certificate=cert, key=key,
                                 client_ca=pki.root, backends=[f"127.0.0.1:{echo_port}"])])
            # no access log line per handshake during the measurement: it is not what is measured
            g.config.write_text(g.config.read_text().replace(f'access_log: "{g.access}"', "access_log: off"))
            g.start()
            try:
                loadgen(g.port("bench"), pki, client, 2, concurrency)  # warm-up
                rates, cpus = [], []
                for _ in range(runs):
                    m = measure_gateway(g, pki, client, seconds, concurrency)
                    rates.append(m["rate"])
                    cpus.append(m["cpu_us"])
                    print(f"{system}: {m}", file=sys.stderr)
                results.append(summarise("full_handshake_tls13_p256_mtls", system, "handshakes_per_s", "1/s", rates))
                results.append(summarise("full_handshake_tls13_p256_mtls", system, "server_cpu_per_handshake", "us", cpus))
            finally:
                g.stop()
        for threads in (1, 2):
            vals = []
            for _ in range(runs):
                r = run([str(HSM_BENCH), t.module, f"file:{t.pin_file}", t.uri("server-ec256"), str(threads),
                         str(seconds)], env=t.env)
                m = re.search(r"([0-9.]+) signs/s total", r.stdout.decode())
                if m is None:
                    raise SystemExit(f"hsm_bench printed no total: {r.stdout.decode()}")
                vals.append(float(m.group(1)))
            results.append(summarise(f"hsm_sign_p256_{threads}t", "pkcs11 layer + SoftHSM", "signs_per_s", "1/s", vals))
    finally:
        echod.send_signal(signal.SIGTERM)
        echod.wait()

    meta = {"machine": platform.node(), "cpus": os.cpu_count(), "kernel": platform.release(),
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "runs": runs, "seconds": seconds,
            "concurrency": concurrency, "loadavg_at_end": os.getloadavg()}
    (out / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    lines = ["| scenario | system | metric | median | min | max | runs |", "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['name']} | {r['system']} | {r['metric']} | {r['median']:.0f} {r['unit']} | "
                     f"{r['min']:.0f} | {r['max']:.0f} | {r['runs']} |")
    (out / "results.md").write_text("\n".join(lines) + "\n\n" + json.dumps(meta) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
