"""Denial-of-service scenario (hsmgate only): what legitimate clients keep of their rate while one address
runs a slowloris and another floods handshakes (the reliability issue's goal: at least 90%).

  dos   legitimate clients: 8 loopback addresses (127.0.0.10-17), each a loadgen of 2 connections doing
        full mutual-TLS handshakes with an echo. Their rate is measured alone, then while 127.0.0.2 holds
        5,000 connections that never send a byte (slowloris) and 127.0.0.3 runs a loadgen of 64
        connections in a loop (a handshake flood with a valid certificate: the worst case, since each
        admitted handshake costs a signature). Two gateways: with the default limits only
        (max_handshakes_per_address 256), and with max_handshake_rate_per_address 150 (a legitimate
        address here does about 100 a second). Runs alternate (alone, attacked) so drift hits both.
"""
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time

import compare
import peers

LEGIT = [f"127.0.0.{i}" for i in range(10, 18)]
SLOWLORIS = "127.0.0.2"
FLOOD = "127.0.0.3"


def legit_rate(ctx, port, seconds):
    """The 8 legitimate addresses at once: total successes per second, errors."""
    procs = [subprocess.Popen(compare.loadgen_cmd(ctx, port, seconds, 2, extra=("--echo-bytes", "64", "--bind", a)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for a in LEGIT]
    ok = err = 0
    for p in procs:
        out, _ = p.communicate(timeout=seconds * 4 + 60)
        import json
        for line in reversed(out.decode().strip().splitlines()):
            try:
                doc = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "successes" in doc:
                ok += doc["successes"]
                err += doc.get("errors", {}).get("total", 0)
                break
    return ok / seconds, err


class Attack:
    """The slowloris sockets and the flood loadgen, for as long as the measurement runs."""

    def __init__(self, ctx, port, seconds, n_slow):
        self.socks = []
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, n_slow + 1000)), hard))
        for _ in range(n_slow):
            s = socket.socket()
            s.setblocking(False)
            s.bind((SLOWLORIS, 0))
            try:
                s.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            except OSError:
                s.close()
                continue
            self.socks.append(s)
        self.flood = subprocess.Popen(compare.loadgen_cmd(ctx, port, seconds + 5, 64, extra=("--echo-bytes", "64", "--bind", FLOOD)),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # let both take hold before the legitimate clients start

    def stop(self):
        self.flood.terminate()
        self.flood.wait(30)
        for s in self.socks:
            s.close()


def scenario_dos(ctx, results):
    tmp, runs = ctx["tmp"], ctx["runs"]
    seconds = ctx["seconds"]
    n_slow = 1000 if ctx["quick"] else 5000
    configs = (("hsmgate (default limits)", {}),
               ("hsmgate (rate 150/s per address)", {"max_handshake_rate_per_address": 150}))
    for system, top in configs:
        srv = peers.make(compare.HSM, tmp / f"dos-{len(results)}", ctx, "ec256", **top)
        srv.start()
        try:
            port = srv.ports["tcp"]
            legit_rate(ctx, port, 2)  # warm-up
            alone, attacked, errs = [], [], 0
            for i in range(runs):
                for phase in (("alone", "attacked") if i % 2 == 0 else ("attacked", "alone")):
                    if phase == "alone":
                        r, e = legit_rate(ctx, port, seconds)
                        alone.append(r)
                    else:
                        atk = Attack(ctx, port, seconds, n_slow)
                        try:
                            r, e = legit_rate(ctx, port, seconds)
                        finally:
                            atk.stop()
                        attacked.append(r)
                    errs += e
                    print(f"  dos | {system} | run {i + 1} {phase}: {r:.0f}/s legitimate, errors {e}", file=sys.stderr)
            name = "dos_legit_full_handshake_tls13_p256_mtls"
            results.append(compare.summarise(name, f"{system}, alone", "handshakes_per_s", "1/s", alone))
            results.append(compare.summarise(name, f"{system}, under attack", "handshakes_per_s", "1/s", attacked))
            ratio = statistics.median(attacked) / statistics.median(alone) if alone and statistics.median(alone) else 0
            results.append(compare.summarise("dos_legit_rate_ratio", system, "rate_ratio", "", [ratio],
                                             note=f"{n_slow} slowloris connections from one address and a 64-connection "
                                                  f"handshake flood from another; legitimate errors {errs}"))
        finally:
            srv.stop()
