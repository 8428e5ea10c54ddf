#!/usr/bin/python3
"""Soak: a steady mixed load on one gateway for a long time, with revocations arriving, and a report of
memory growth and errors (make soak SOAK_MINUTES=60; not part of make test).

  tests/bench/soak.py [--minutes N] [--build DIR] [--out build/soak]

The gateway (key in SoftHSM, a policy store, the admin API) serves a two-way tcp listener and a two-way
https listener. For the whole run:
  - full mutual-TLS handshakes with an echo (loadgen --mode full) on the tcp listener,
  - keep-alive HTTPS requests (loadgen --mode keepalive) on the https listener,
  - every second a revocation of a serial nobody uses, posted to the admin API; every ten seconds a
    victim client (not the load's) is put on hold and lifted again, with a live connection of its own
    that must be closed by the hold.
The load generators run in slices of 60 s so that errors can be attributed to a time. RSS of the
gateway is sampled every 10 s. The target (the reliability issue): under 5% RSS growth from the end
of the warm-up (the first fifth of the run, at least one minute; a run lasts at least two) to the
end, and no unexpected error.
Exit status 0 when both hold, 1 otherwise; build/soak/report.json and report.md say what happened.
"""
import argparse
import json
import os
import pathlib
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
import conftest  # noqa: E402
from conftest import Gateway, Pki, free_port, run  # noqa: E402
from revocation import api  # noqa: E402

HTTP_REQ = "GET /soak HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n"


def rss_kib(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def loadgen_slice(loadgen, port, pki, client, mode, seconds, concurrency, extra=()):
    cmd = [str(loadgen), "--connect", f"127.0.0.1:{port}", "--ca", str(pki.root), "--cert", str(client[0]),
           "--key", str(client[1]), "--servername", "localhost", "--tls", "1.3", "--mode", mode,
           "--concurrency", str(concurrency), "--duration", str(seconds), "--json", *extra]
    r = subprocess.run(cmd, capture_output=True, timeout=seconds * 4 + 120)
    try:
        return json.loads(r.stdout.decode().strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"successes": 0, "errors": {"total": 1, "loadgen_failed": r.stderr.decode()[-500:]}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", "60")))
    ap.add_argument("--build", default=str(ROOT / "build" / "release"))
    ap.add_argument("--out", default=str(ROOT / "build" / "soak"))
    a = ap.parse_args()
    build = pathlib.Path(a.build)
    os.environ.setdefault("HSMGATE_BIN", str(build / "hsmgate"))
    conftest.BIN = os.environ["HSMGATE_BIN"]
    loadgen, echod, httpd = build / "tests" / "loadgen", build / "tests" / "echod", build / "tests" / "httpd"
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    # At least two minutes: the warm-up takes one, and growth is measured over what follows it (a
    # one-minute run had no sample after its warm-up and compared the end with the process's start).
    total_s = max(120.0, a.minutes * 60)
    warm_s = max(60.0, total_s / 5)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="hsmgate-soak-"))
    procs = []
    try:
        pki = Pki(tmp)
        load_client, victim = pki.client("soak-load"), pki.client("soak-victim")
        echo_port, http_port, aport = free_port(), free_port(), free_port()
        procs.append(subprocess.Popen([str(echod), str(echo_port)]))
        procs.append(subprocess.Popen([str(httpd), str(http_port)]))
        tok = run([conftest.BIN, "admin", "token", "soak", "operator"])
        token, line = tok.stdout.decode().strip(), tok.stderr.decode().strip()
        tf = tmp / "admin.tokens"
        tf.write_text(line + "\n")
        os.chmod(tf, 0o600)
        uri, cert = pki.servers["ec256"]
        g = Gateway(tmp / "gw", pki.token)
        g.tmp.mkdir()
        common = dict(auth="two-way", certificate=cert, key=uri, client_ca=pki.root)
        g.write_config([dict(name="tcp", type="tcp", backends=[f"127.0.0.1:{echo_port}"], **common),
                        dict(name="web", type="https", backends=[f"127.0.0.1:{http_port}"], **common)],
                       policy_store=f'"{tmp / "policy.db"}"', admin=f'{{ bind: "127.0.0.1:{aport}", tokens_file: "{tf}" }}')
        g.config.write_text(g.config.read_text().replace(f'access_log: "{g.access}"', "access_log: off")
                            .replace("level: debug", "level: info"))
        g.start()
        issuer = open(pki.root).read()
        victim_pem = open(victim[0]).read()
        stop = threading.Event()
        errors = {"tcp": 0, "web": 0, "api": 0, "victim_not_closed": 0}
        counts = {"tcp": 0, "web": 0, "revocations": 0, "holds": 0}
        samples, slices = [], []
        lock = threading.Lock()

        def load(name, mode, conc, extra=()):
            while not stop.is_set():
                t0 = time.time()
                res = loadgen_slice(loadgen, g.port(name), pki, load_client, mode, 60, conc, extra)
                with lock:
                    counts[name] += res.get("successes", 0)
                    errors[name] += res.get("errors", {}).get("total", 0)
                    slices.append({"listener": name, "t": round(t0 - start, 1), "successes": res.get("successes", 0),
                                   "errors": res.get("errors", {})})

        def changes():
            n = 0
            while not stop.wait(1.0):
                n += 1
                st, _ = api(aport, "POST", "/v1/revocations", token,
                            {"issuer_certificate": issuer, "serial": f"{0x5000000 + n:X}", "reason": "superseded"},
                            timeout=30)
                with lock:
                    if st == 201:
                        counts["revocations"] += 1
                    else:
                        errors["api"] += 1
                if n % 10 == 0:
                    hold_cycle()

        def hold_cycle():
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.load_verify_locations(str(pki.root))
            ctx.load_cert_chain(str(victim[0]), str(victim[1]))
            try:
                s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", g.port("tcp")), timeout=10),
                                    server_hostname="localhost")
                s.sendall(b"v")
                s.recv(1)
            except OSError:
                with lock:
                    errors["victim_not_closed"] += 1
                return
            st1, _ = api(aport, "POST", "/v1/revocations", token, {"certificate": victim_pem, "reason": "certificateHold"},
                         timeout=30)
            closed = False
            deadline = time.time() + 5
            s.settimeout(1)
            while time.time() < deadline and not closed:
                try:
                    closed = s.recv(1) == b""
                except socket.timeout:
                    continue
                except OSError:
                    closed = True
            s.close()
            st2, _ = api(aport, "POST", "/v1/revocations/lift", token, {"certificate": victim_pem}, timeout=30)
            with lock:
                counts["holds"] += 1
                if st1 != 201 or st2 != 200:
                    errors["api"] += 1
                if not closed:
                    errors["victim_not_closed"] += 1

        start = time.time()
        threads = [threading.Thread(target=load, args=("tcp", "full", 8), daemon=True),
                   threading.Thread(target=load, args=("web", "keepalive", 8, ("--payload", HTTP_REQ, "--expect", "HTTP/1.1 200")),
                                    daemon=True),
                   threading.Thread(target=changes, daemon=True)]
        for t in threads:
            t.start()
        while time.time() - start < total_s:
            if g.proc.poll() is not None:
                break
            samples.append({"t": round(time.time() - start, 1), "rss_kib": rss_kib(g.proc.pid)})
            time.sleep(10)
        stop.set()
        for t in threads:
            t.join(200)
        alive = g.proc.poll() is None
        after_warm = [s for s in samples if s["t"] >= warm_s]
        base = after_warm[0]["rss_kib"] if after_warm else (samples[0]["rss_kib"] if samples else 0)
        end = samples[-1]["rss_kib"] if samples else 0
        growth = (end - base) / base * 100 if base else 0.0
        unexpected = sum(errors.values())
        ok = alive and unexpected == 0 and growth < 5.0
        report = {"minutes": a.minutes, "warm_up_s": warm_s, "alive": alive, "rss_kib_after_warm_up": base,
                  "rss_kib_end": end, "rss_growth_percent": round(growth, 2), "errors": errors, "counts": counts,
                  "target": "RSS growth < 5% after warm-up, no unexpected error", "met": ok,
                  "samples": samples, "slices": slices}
        (out / "report.json").write_text(json.dumps(report, indent=1))
        (out / "report.md").write_text(
            f"# Soak, {a.minutes:g} min ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n\n"
            f"| figure | value |\n|---|---|\n| gateway alive at the end | {alive} |\n"
            f"| RSS after warm-up ({warm_s:.0f} s) / at the end | {base} KiB / {end} KiB |\n"
            f"| RSS growth | {growth:.2f}% (target < 5%) |\n"
            f"| handshakes (tcp) / requests (https) | {counts['tcp']} / {counts['web']} |\n"
            f"| revocations posted / hold-and-lift cycles | {counts['revocations']} / {counts['holds']} |\n"
            f"| unexpected errors | {unexpected} {json.dumps(errors)} |\n| target met | {ok} |\n")
        print((out / "report.md").read_text())
        g.stop()
        return 0 if ok else 1
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
