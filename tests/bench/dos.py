"""Denial-of-service scenario (hsmgate only): what legitimate clients keep of their rate while one address
runs a slowloris and another floods handshakes (the reliability issue's goal: at least 90% of their normal
rate).

  dos   legitimate clients: 8 loopback addresses (127.0.0.10-17), each a loadgen doing full mutual-TLS
        handshakes with an echo. Attack: 127.0.0.2 holds 5,000 connections that never send a byte
        (slowloris) while 127.0.0.3 runs a loadgen of 64 connections in a loop (a handshake flood with a
        valid certificate: the worst case, since each admitted handshake costs a signature).

        Two measures of the legitimate clients, each alone and under attack, in alternation so that
        drift hits both:
          - at their normal rate (the goal's measure): open loop (loadgen --rate), together half of the
            median rate they reached alone at full speed (measured first); latency counts from each
            scheduled start, so a start that had to wait shows;
          - at full speed (closed loop, 2 connections per address), for information: here the attack and
            the legitimate clients share one saturated gateway, so no gateway can keep 90% of it for
            them unless it can tell them from the attacker; and on one machine the attacker's own TLS
            work takes CPU from the gateway too.
        Two gateways: the default limits only (max_handshakes_per_address 256), and with
        max_handshake_rate_per_address 150 (a legitimate address here does about 100 a second at full
        speed). The attack's own figures (flood connections attempted and completed a second, slowloris
        connections opened) are reported next to the result.
"""
import json
import resource
import socket
import statistics
import subprocess
import sys
import time

import compare
import peers

LEGIT = [f"127.0.0.{i}" for i in range(10, 18)]
SLOWLORIS = "127.0.0.2"
FLOOD = "127.0.0.3"
NORMAL_SHARE = 0.5  # the legitimate clients' normal rate: this share of what they reach alone at full speed


def last_json(out):
    for line in reversed(out.decode().strip().splitlines()):
        try:
            doc = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "successes" in doc:
            return doc
    return {"successes": 0, "errors": {"total": 1}, "latency_us": {}}


def legit_rate(ctx, port, seconds, offered=0.0):
    """The 8 legitimate addresses at once, closed loop (offered 0) or open loop at offered handshakes a
    second in all: (successes per second, errors, worst p99 latency in ms)."""
    extra = ("--echo-bytes", "64")
    conc = 2
    if offered:
        # Open loop: a start waits for a free connection only past 32 in flight per address (at 50
        # a second, handshakes slower than 0.6 s), as clients that open connections when they need them.
        each = offered / len(LEGIT)
        conc = 32
        extra += ("--rate", f"{each:.1f}")
    procs = [subprocess.Popen(compare.loadgen_cmd(ctx, port, seconds, conc, extra=extra + ("--bind", a)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for a in LEGIT]
    ok = err = 0
    p99 = 0.0
    for p in procs:
        out, _ = p.communicate(timeout=seconds * 4 + 60)
        doc = last_json(out)
        ok += doc["successes"]
        err += doc.get("errors", {}).get("total", 0)
        p99 = max(p99, doc.get("latency_us", {}).get("p99", 0) / 1000)
    return ok / seconds, err, p99


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
        self.seconds = seconds + 5
        self.flood = subprocess.Popen(compare.loadgen_cmd(ctx, port, self.seconds, 64,
                                                          extra=("--echo-bytes", "64", "--bind", FLOOD)),
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # let both take hold before the legitimate clients start

    def stop(self):
        """Ends the attack: {flood attempts a second, flood handshakes completed a second, slowloris sockets}."""
        self.flood.terminate()
        out, _ = self.flood.communicate(timeout=30)
        doc = last_json(out)
        for s in self.socks:
            s.close()
        elapsed = doc.get("elapsed_s") or self.seconds
        done = doc["successes"]
        return {"flood_attempts_per_s": (done + doc.get("errors", {}).get("total", 0)) / elapsed,
                "flood_completed_per_s": done / elapsed, "slowloris": len(self.socks)}


def measure_pair(ctx, port, seconds, n_slow, offered, runs, system, label):
    """runs x (alone, attacked), alternating: ([alone rates], [attacked rates], errors, [attack figures],
    {"alone": [p99 ms], "under attack": [p99 ms]})."""
    alone, attacked, attacks, p99s, errs = [], [], [], {"alone": [], "under attack": []}, 0
    for i in range(runs):
        for phase in (("alone", "attacked") if i % 2 == 0 else ("attacked", "alone")):
            if phase == "alone":
                r, e, p99 = legit_rate(ctx, port, seconds, offered)
                alone.append(r)
                p99s["alone"].append(p99)
            else:
                atk = Attack(ctx, port, seconds, n_slow)
                try:
                    r, e, p99 = legit_rate(ctx, port, seconds, offered)
                finally:
                    attacks.append(atk.stop())
                attacked.append(r)
                p99s["under attack"].append(p99)
            errs += e
            print(f"  dos | {system} | {label} | run {i + 1} {phase}: {r:.0f}/s legitimate, p99 {p99:.0f} ms, "
                  f"errors {e}" + (f", attack {attacks[-1]}" if phase == "attacked" else ""), file=sys.stderr)
    return alone, attacked, errs, attacks, p99s


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
            full = 0.0
            # Full speed first: the median of its runs alone sets the normal rate.
            for label, name in (("full speed", "dos_legit_full_speed"), ("normal rate", "dos_legit_normal_rate")):
                rate = round(full * NORMAL_SHARE) if full else 0
                alone, attacked, errs, attacks, p99s = measure_pair(ctx, port, seconds, n_slow, rate, runs, system,
                                                                    label)
                if not rate:
                    full = statistics.median(alone)
                hs = f"{name}_full_handshake_tls13_p256_mtls"
                results.append(compare.summarise(hs, f"{system}, alone", "handshakes_per_s", "1/s", alone,
                                                 **({"offered_per_s": rate} if rate else {})))
                results.append(compare.summarise(hs, f"{system}, under attack", "handshakes_per_s", "1/s", attacked,
                                                 **({"offered_per_s": rate} if rate else {})))
                if rate:  # from each scheduled start: the worst of the 8 addresses' p99
                    for phase, v in p99s.items():
                        results.append(compare.summarise(hs, f"{system}, {phase}", "latency_p99", "ms", v))
                med = statistics.median(alone) if alone else 0
                ratio = statistics.median(attacked) / med if med else 0
                flood = statistics.median(a["flood_attempts_per_s"] for a in attacks)
                flood_ok = statistics.median(a["flood_completed_per_s"] for a in attacks)
                slow = min(a["slowloris"] for a in attacks)
                what = (f"open loop at {rate}/s offered ({NORMAL_SHARE:.0%} of the {full:.0f}/s reached alone at "
                        f"full speed, median)" if rate else "closed loop, 2 connections per address")
                results.append(compare.summarise(f"{name}_ratio", system, "rate_ratio", "", [ratio],
                                                 note=f"legitimate clients {what}; attack: {slow} slowloris "
                                                      f"connections from one address and a 64-connection handshake "
                                                      f"flood from another ({flood:.0f} attempts/s, {flood_ok:.0f} "
                                                      f"completed/s); legitimate errors {errs}"))
        finally:
            srv.stop()
