#!/usr/bin/python3
"""Benchmark runner: hsmgate (key in SoftHSM, key in a PEM file) beside nginx (stream and http modules),
HAProxy and stunnel from Debian's packages, on the same machine, in the same run, with the same
certificates and the same load generator (tests/bench/loadgen.c, on OpenSSL).

  tests/bench/run.py [--quick] [--build build/release] [--out build/bench] [--only SCENARIO[,...]]
                     [--systems SYSTEM[,...]] [--idle-conns N] [--pol-count N]

Scenarios (compare.py holds the first five, peers.py the systems):
  full_handshake      full two-way handshakes/s and server CPU per handshake, TLS 1.3/1.2, P-256/RSA-2048
  resume              resumed handshakes/s (tickets / PSK), TLS 1.3/1.2
  keepalive           HTTPS requests/s and latency on keep-alive connections (https listener)
  bulk                MB/s through a tcp listener, AES-128-GCM and ChaCha20-Poly1305
  idle                resident memory per idle established mutual-TLS connection
  revocation_scale    full-handshake rate with 0, 100,000 and 1,000,000 revoked serials (hsmgate only)
  revocation_latency  admin API revocation acknowledged -> first refused handshake, -> live connection closed
  hsm_sign            signatures per second through the pkcs11 layer, 1 and 2 threads, P-256 and RSA-2048
  policy              the admission policies' deep dive (snapshot build, memory, CLI change -> enforcement)
  dos                 legitimate clients' handshake rate alone and under a slowloris + a handshake flood (dos.py)

With --only, results go to results-SCENARIO.json / .md beside results.json (which a full run writes).
Charts (PNG, gnuplot) are drawn by charts.py from the JSON.

Each figure is the median of several runs. Server CPU is utime+stime of all the server's processes
(nginx: master and workers; hsmgate: all its threads, SoftHSM included: it runs in-process) from /proc,
before and after the run.
"""
import argparse
import json
import os
import pathlib
import platform
import re
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
import conftest  # noqa: E402
from conftest import Gateway, Pki, free_port, run  # noqa: E402  (shared PKI and process helpers)

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import compare  # noqa: E402
import peers  # noqa: E402
import revocation  # noqa: E402
import dos  # noqa: E402
import report  # noqa: E402

# set by main() from --build
B = ROOT / "build" / "release"
LOADGEN = ECHOD = HSM_BENCH = POL_FILL = TEST_POL_SNAPSHOT = None
SCENARIOS = ("full_handshake", "resume", "keepalive", "bulk", "idle", "revocation_scale", "revocation_latency",
             "hsm_sign", "policy", "dos")
SYSTEMS = (compare.HSM, compare.PEM) + compare.PEERS
TICK = os.sysconf("SC_CLK_TCK")


def set_build(build):
    global B, LOADGEN, ECHOD, HSM_BENCH, POL_FILL, TEST_POL_SNAPSHOT
    B = pathlib.Path(build).resolve()
    LOADGEN, ECHOD = B / "tests" / "loadgen", B / "tests" / "echod"
    HSM_BENCH, POL_FILL = B / "tests" / "hsm_bench", B / "tests" / "pol_fill"
    TEST_POL_SNAPSHOT = B / "tests" / "test_pol_snapshot"
    conftest.BIN = str(B / "hsmgate")


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


def bench_gateway(tmp, name, token, listener, **top):
    """A gateway on one two-way listener, without an access log line per handshake (not what is measured)."""
    g = Gateway(tmp / name, token)
    g.tmp.mkdir()
    g.write_config([listener], **top)
    g.config.write_text(g.config.read_text().replace(f'access_log: "{g.access}"', "access_log: off"))
    return g


def file_server(ctx, keytype):
    """The same server identity as the HSM's, with its key in a PEM file (for hsmgate-PEM and the peers)."""
    pki, t, tmp = ctx["pki"], ctx["token"], ctx["tmp"]
    fkey, fcsr, fcert = tmp / f"server-file-{keytype}.key", tmp / f"server-file-{keytype}.csr", \
        tmp / f"server-file-{keytype}.pem"
    newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if keytype == "ec256" else ["-newkey", "rsa:2048"]
    run(["openssl", "req", "-new", *newkey, "-nodes", "-keyout", str(fkey), "-out", str(fcsr), "-subj", "/CN=localhost"])
    t.pki("client", "--ca-key", t.uri("root"), "--ca-cert", str(pki.root), "--csr", str(fcsr), "--eku", "serverAuth",
          "--san", "DNS:localhost", "--san", "IP:127.0.0.1", "--out", str(fcert))
    return fkey, fcert


def scenario_hsm_sign(ctx, results):
    t, runs, seconds = ctx["token"], ctx["runs"], ctx["seconds"]
    for key, tag in (("server-ec256", "p256"), ("server-rsa2048", "rsa2048")):
        for threads in (1, 2):
            vals = []
            for _ in range(runs):
                r = run([str(HSM_BENCH), t.module, f"file:{t.pin_file}", t.uri(key), str(threads),
                         str(seconds)], env=t.env)
                m = re.search(r"([0-9.]+) signs/s total", r.stdout.decode())
                if m is None:
                    raise SystemExit(f"hsm_bench printed no total: {r.stdout.decode()}")
                vals.append(float(m.group(1)))
            results.append(summarise(f"hsm_sign_{tag}_{threads}t", "pkcs11 layer + SoftHSM", "signs_per_s", "1/s",
                                     vals))


# ------------------------------------------------------------------------------------------ policy

def proc_status_kb(pid, key):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def percentile(values, q):
    """Linear interpolation between closest ranks (numpy's default); q in [0, 100]."""
    v = sorted(values)
    if not v:
        return float("nan")
    k = (len(v) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def dist(values):
    return {"n": len(values), "p50": percentile(values, 50), "p90": percentile(values, 90),
            "p99": percentile(values, 99), "max": max(values) if values else float("nan"),
            "min": min(values) if values else float("nan")}


GEN_RE = re.compile(r"policy: store generation (\d+) in force \(([0-9]+) revocation.*?built in ([0-9]+) ms\)")


def published(g):
    """[(generation, revocations, built_ms)] from the gateway's log, in order."""
    return [(int(m.group(1)), int(m.group(2)), int(m.group(3))) for m in GEN_RE.finditer(g.log())]


def wait_generation(g, gen, timeout=30):
    """Waits for the log line saying generation >= gen is in force; returns (seconds waited, its built_ms)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        for pg, _, built in reversed(published(g)):
            if pg >= gen:
                return time.monotonic() - t0, built
        if g.proc.poll() is not None:
            raise SystemExit(f"gateway exited ({g.proc.returncode}):\n{g.log()[-4000:]}")
        time.sleep(0.005)
    raise SystemExit(f"generation {gen} not in force after {timeout} s:\n{g.log()[-4000:]}")


def cli_revoke(store, cert, lift=False):
    """`hsmgate revoke` (certificateHold) or `revoke --lift`; returns (t_start, t_ack, generation)."""
    cmd = [conftest.BIN, "revoke", "--store", str(store), "--cert", str(cert), "--actor", "bench"]
    cmd += ["--lift"] if lift else ["--reason", "certificateHold"]
    t0 = time.monotonic()
    r = run(cmd)
    t_ack = time.monotonic()
    m = re.search(r"store generation (\d+)", r.stderr.decode())
    if m is None:
        raise SystemExit(f"hsmgate revoke printed no generation: {r.stderr.decode()}")
    return t0, t_ack, int(m.group(1))


def scenario_policy(ctx, results):
    pki, t, tmp, client, echo_port = ctx["pki"], ctx["token"], ctx["tmp"], ctx["client"], ctx["echo_port"]
    runs, seconds, concurrency, quick = ctx["runs"], ctx["seconds"], ctx["concurrency"], ctx["quick"]
    count = ctx["pol_count"]
    K = 15 if quick else 40
    detail = {"revocations": count, "latency_iterations": K}
    big_label = f"{count // 1000000}M" if count % 1000000 == 0 else str(count)

    # 1. the stores: one with `count` random serials revoked by the bench client's CA (the Pki root), one empty
    big, empty = tmp / "policy-big.db", tmp / "policy-empty.db"
    r = run([str(POL_FILL), "--store", str(big), "--issuer-cert", str(pki.root), "--count", str(count), "--seed", "1",
             "--except-cert", str(client[0])], timeout=900)
    fill = r.stdout.decode().strip()
    print(fill, file=sys.stderr)
    m = re.search(r": ([0-9.]+) s \(", fill)
    detail["fill_s"] = float(m.group(1)) if m else None
    run([str(POL_FILL), "--store", str(empty), "--issuer-cert", str(pki.root), "--count", "0"])
    detail["store_bytes"] = big.stat().st_size

    hsm_uri, hsm_cert = pki.servers["ec256"]
    listener = dict(name="bench", type="tcp", auth="two-way", certificate=hsm_cert, key=hsm_uri,
                    client_ca=pki.root, backends=[f"127.0.0.1:{echo_port}"])
    gws = {}
    try:
        for label, store in (("empty", empty), (big_label, big)):
            g = bench_gateway(tmp, f"policy-{label}", t, listener, policy_store=f'"{store}"')
            t0 = time.monotonic()
            g.start()
            ready_s = time.monotonic() - t0
            m = re.search(r"policy: .* generation (\d+) in force: (\d+) revocation.*snapshot (\d+) KiB", g.log())
            if m is None:
                raise SystemExit(f"no startup policy line in the gateway log:\n{g.log()}")
            gws[label] = {"g": g, "store": store, "ready_s": ready_s, "snapshot_kib": int(m.group(3)),
                          "revocations": int(m.group(2)), "rss_ready_kb": proc_status_kb(g.proc.pid, "VmRSS"),
                          "hwm_ready_kb": proc_status_kb(g.proc.pid, "VmHWM")}
            print(f"policy: gateway on the {label} store ready in {ready_s:.2f} s, snapshot {m.group(3)} KiB, "
                  f"RSS {gws[label]['rss_ready_kb'] / 1024:.1f} MiB", file=sys.stderr)
        if gws[big_label]["revocations"] != count:
            raise SystemExit(f"the gateway reports {gws[big_label]['revocations']} revocations, not {count}")

        # 2. snapshot build + publish on a change, and the gateway's memory around it: a few hold/lift pairs of
        #    a certificate that is not used elsewhere (the store stays at `count` between pairs)
        other = pki.client("policy-change")
        changes = 5
        for label, gw in gws.items():
            g, built, seen = gw["g"], [], []
            for _ in range(changes):
                for lift in (False, True):
                    _, t_ack, gen = cli_revoke(gw["store"], other[0], lift=lift)
                    waited, ms = wait_generation(g, gen)
                    built.append(ms)
                    seen.append(waited * 1000)
            gw["change_built_ms"] = built
            gw["change_logged_after_ack_ms"] = seen
            gw["rss_after_changes_kb"] = proc_status_kb(g.proc.pid, "VmRSS")
            gw["hwm_after_changes_kb"] = proc_status_kb(g.proc.pid, "VmHWM")
            print(f"policy: {label} store: built in {built} ms; RSS {gw['rss_ready_kb'] / 1024:.1f} -> "
                  f"{gw['rss_after_changes_kb'] / 1024:.1f} MiB, peak {gw['hwm_after_changes_kb'] / 1024:.1f} MiB",
                  file=sys.stderr)

        # 2b. a change the gateway cannot apply as an overlay (a batch: pol_fill adds one serial per run)
        #     rebuilds the whole snapshot: that is the build time of the whole store
        for label, gw in gws.items():
            g, whole = gw["g"], []
            for i in range(3):
                before = max((pg for pg, _, _ in published(g)), default=0)
                run([str(POL_FILL), "--store", str(gw["store"]), "--issuer-cert", str(pki.root), "--count", "1",
                     "--seed", str(1000 + i), "--except-cert", str(client[0])], timeout=120)
                _, ms_ = wait_generation(g, before + 1)
                mine = [l for l in g.log().splitlines() if f"store generation {before + 1} in force" in l]
                if not any("the whole store" in l for l in mine):
                    raise SystemExit(f"policy: a batch change was not a whole rebuild: {mine}")
                whole.append(ms_)
            gw["whole_built_ms"] = whole
            gw["rss_after_whole_kb"] = proc_status_kb(g.proc.pid, "VmRSS")
            gw["hwm_after_whole_kb"] = proc_status_kb(g.proc.pid, "VmHWM")
            print(f"policy: {label} store: whole rebuilds in {whole} ms; RSS {gw['rss_after_whole_kb'] / 1024:.1f} MiB, "
                  f"peak {gw['hwm_after_whole_kb'] / 1024:.1f} MiB", file=sys.stderr)

        # 3. full-handshake rate, same loadgen settings as full_handshake, the two gateways in alternation
        rates = {label: [] for label in gws}
        cpus = {label: [] for label in gws}
        errors = {label: 0 for label in gws}
        for label, gw in gws.items():
            loadgen(gw["g"].port("bench"), pki, client, 2, concurrency)  # warm-up
        order = list(gws)
        for i in range(runs):
            for label in (order if i % 2 == 0 else order[::-1]):
                mm = measure_gateway(gws[label]["g"], pki, client, seconds, concurrency)
                rates[label].append(mm["rate"])
                cpus[label].append(mm["cpu_us"])
                errors[label] += mm["errors"]
                print(f"policy: {label} store: {mm}", file=sys.stderr)
        for label in gws:
            system = f"hsmgate (policy store: {label if label == 'empty' else big_label + ' revoked'})"
            results.append(summarise("policy_full_handshake_tls13_p256_mtls", system, "handshakes_per_s", "1/s",
                                     rates[label]))
            results.append(summarise("policy_full_handshake_tls13_p256_mtls", system, "server_cpu_per_handshake", "us",
                                     cpus[label]))
        ratio = statistics.median(rates[big_label]) / statistics.median(rates["empty"])
        pair_ratios = [b / e for b, e in zip(rates[big_label], rates["empty"]) if e > 0]
        detail["handshake"] = {"rates": rates, "cpu_us": cpus, "errors": errors, "ratio_of_medians": ratio,
                               "pair_ratios": pair_ratios}
        results.append(summarise("policy_full_handshake_ratio", f"{big_label} revoked / empty store", "rate_ratio", "",
                                 [ratio]))

        # 4. acknowledgement -> enforcement: hold, handshake until refused; lift, handshake until admitted
        victim = pki.client("policy-victim")
        sslctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        sslctx.load_verify_locations(str(pki.root))
        sslctx.minimum_version = sslctx.maximum_version = ssl.TLSVersion.TLSv1_3
        sslctx.load_cert_chain(str(victim[0]), str(victim[1]))
        for label, gw in gws.items():
            g, port = gw["g"], gw["g"].port("bench")
            if not revocation.admitted(port, sslctx):
                raise SystemExit(f"policy: the victim client is refused before any change ({label} store)")
            lat = {"revoke": [], "lift": []}
            upper = {"revoke": [], "lift": []}
            att = {"revoke": [], "lift": []}
            cli, rss = [], []
            n0 = len(published(g))
            for _ in range(K):
                for kind, lift, want in (("revoke", False, False), ("lift", True, True)):
                    t_start, t_ack, gen = cli_revoke(gw["store"], victim[0], lift=lift)
                    cli.append((t_ack - t_start) * 1000)
                    lo, hi, n = revocation.until_state(port, sslctx, want, t_ack)
                    lat[kind].append(lo * 1000)
                    upper[kind].append(hi * 1000)
                    att[kind].append(n)
                rss.append(proc_status_kb(g.proc.pid, "VmRSS"))
            builds = [b for _, _, b in published(g)[n0:]]
            gw["latency_ms"], gw["latency_end_ms"], gw["attempts"] = lat, upper, att
            gw["cli_ms"], gw["latency_built_ms"], gw["latency_rss_kb"] = cli, builds, rss
            gw["hwm_end_kb"] = proc_status_kb(g.proc.pid, "VmHWM")
            print(f"policy: {label} store: hold->refused {dist(lat['revoke'])}, lift->admitted {dist(lat['lift'])}",
                  file=sys.stderr)
            for kind in ("revoke", "lift"):
                what = "hold_to_refused" if kind == "revoke" else "lift_to_admitted"
                results.append(summarise(f"policy_ack_to_enforcement_{what}", f"hsmgate (policy store: {label})",
                                         "latency_p99", "ms", [percentile(lat[kind], 99)]))
    finally:
        for gw in gws.values():
            gw["g"].stop()
        # what the gateways said that is not routine: errors and warnings
        for label, gw in gws.items():
            bad = [l for l in gw["g"].log().splitlines()
                   if re.search(r"hsmgate\[\d+\]: (emerg|alert|crit|error|warning): ", l)]
            gw["log_warnings"] = bad[:50]
        for f in tmp.glob("policy-*.db*"):   # the logs stay; 1M rows of store do not
            f.unlink()

    # 5. the unit test's own measurement at the same scale (another process: a clean RSS)
    measure_lines = []
    if TEST_POL_SNAPSHOT.exists():
        r = subprocess.run([str(TEST_POL_SNAPSHOT)], capture_output=True, timeout=600,
                           env=dict(os.environ, POL_SCALE=str(count)))
        measure_lines = [l.split("]", 1)[1].strip() for l in r.stdout.decode().splitlines() if "MEASURE" in l]
    detail["test_pol_snapshot_measure"] = measure_lines

    B_ = gws[big_label]
    E_ = gws["empty"]
    for label, gw in gws.items():
        detail[label] = {k: v for k, v in gw.items() if k not in ("g", "store")}
    ctx["policy"] = detail
    results.append(summarise("policy_snapshot_build_publish", f"gateway log, {big_label} revocations, whole store",
                             "built_in", "ms", B_["whole_built_ms"]))
    results.append(summarise("policy_snapshot_overlay_publish", f"gateway log, {big_label} revocations, idle",
                             "built_in", "ms", B_["change_built_ms"]))
    results.append(summarise("policy_snapshot_overlay_publish", f"gateway log, {big_label} revocations, latency loop",
                             "built_in", "ms", B_["latency_built_ms"]))
    results.append(summarise("policy_snapshot_memory", f"{big_label} revocations", "snapshot_size", "MiB",
                             [B_["snapshot_kib"] / 1024]))

    # the scenario's own table: each claim, what was measured, the target
    def ms(v):
        return f"{v:.0f} ms" if v >= 10 else f"{v:.1f} ms"
    hs = detail["handshake"]
    rb, re_ = statistics.median(hs["rates"][big_label]), statistics.median(hs["rates"]["empty"])
    mib = 1024.0
    rows = [
        ("full-handshake rate, %s revoked / empty store" % big_label,
         f"{ratio:.3f} ({rb:.0f}/s vs {re_:.0f}/s; run pairs {', '.join(f'{x:.3f}' for x in pair_ratios)}; "
         f"errors {hs['errors'][big_label]}/{hs['errors']['empty']})", ">= 0.97", ratio >= 0.97),
        (f"snapshot build + publish of the whole store, {big_label} (gateway log 'the whole store, built in')",
         f"{len(B_['whole_built_ms'])} batch changes: median {statistics.median(B_['whole_built_ms']):.0f} ms, "
         f"max {max(B_['whole_built_ms']):.0f} ms; RSS after them {B_['rss_after_whole_kb'] / mib:.1f} MiB, "
         f"peak {B_['hwm_after_whole_kb'] / mib:.1f} MiB", "< 1 s", max(B_["whole_built_ms"]) < 1000),
        (f"single changes published as overlays, {big_label}",
         f"{len(B_['change_built_ms'])} changes, no handshakes: median {statistics.median(B_['change_built_ms']):.0f} ms,"
         f" max {max(B_['change_built_ms']):.0f} ms; {len(B_['latency_built_ms'])} changes during the latency loop: "
         f"median {statistics.median(B_['latency_built_ms']):.0f} ms, max {max(B_['latency_built_ms']):.0f} ms",
         "(no target)", True),
        (f"snapshot memory, {big_label}",
         f"snapshot {B_['snapshot_kib'] / mib:.1f} MiB; RSS at ready {B_['rss_ready_kb'] / mib:.1f} MiB vs "
         f"{E_['rss_ready_kb'] / mib:.1f} MiB empty (+{(B_['rss_ready_kb'] - E_['rss_ready_kb']) / mib:.1f}); "
         f"after changes {B_['rss_after_changes_kb'] / mib:.1f} MiB, peak {B_['hwm_after_changes_kb'] / mib:.1f} MiB",
         "< 100 MB", B_["snapshot_kib"] * 1024 < 100e6),
        (f"gateway RSS over the {2 * K} latency-phase rebuilds, {big_label}",
         f"{min(B_['latency_rss_kb']) / mib:.1f}..{max(B_['latency_rss_kb']) / mib:.1f} MiB (last "
         f"{B_['latency_rss_kb'][-1] / mib:.1f}); peak {B_['hwm_end_kb'] / mib:.1f} MiB; the empty store's gateway "
         f"{max(E_['latency_rss_kb']) / mib:.1f} MiB in the same loop", "bounded (2nd half <= 1st half + 10%)",
         max(B_["latency_rss_kb"][K // 2:]) <= max(B_["latency_rss_kb"][:K // 2]) * 1.1),
    ]
    for label in gws:
        gw = gws[label]
        d = dist(gw["latency_ms"]["revoke"])
        rows.append((f"hold acknowledged -> refused, {label} store (p50/p90/p99/max)",
                     f"{ms(d['p50'])} / {ms(d['p90'])} / {ms(d['p99'])} / {ms(d['max'])}", "p99 < 50 ms",
                     d["p99"] < 50))
    lines = ["| claim | measured | target | met |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {'yes' if ok else 'NO'} |" for a, b, c, ok in rows]
    lines += ["", "Acknowledgement (`hsmgate revoke` returned) -> start of the first handshake with the new outcome; "
                  "in brackets, -> its end (the gateway decides in between)",
              "", "| store | change | n | p50 | p90 | p99 | max | handshakes tried (median/max) | CLI run (median) | "
                  "snapshot built in (median/max) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for label, gw in gws.items():
        for kind, what in (("revoke", "hold -> refused"), ("lift", "lift -> admitted")):
            d, u = dist(gw["latency_ms"][kind]), dist(gw["latency_end_ms"][kind])
            a = gw["attempts"][kind]
            lb = gw["latency_built_ms"] or [0]
            lines.append(f"| {label} | {what} | {d['n']} | {ms(d['p50'])} ({ms(u['p50'])}) | {ms(d['p90'])} "
                         f"({ms(u['p90'])}) | {ms(d['p99'])} ({ms(u['p99'])}) | {ms(d['max'])} ({ms(u['max'])}) | "
                         f"{statistics.median(a):.0f}/{max(a)} | {statistics.median(gw['cli_ms']):.0f} ms | "
                         f"{statistics.median(lb):.0f}/{max(lb)} ms |")
    if detail.get("fill_s") is not None:
        lines += ["", f"store fill: {count} revocations in {detail['fill_s']:.2f} s (pol_fill, 50,000 per "
                      f"transaction); store file {detail['store_bytes'] / 1048576:.0f} MiB; gateway ready in "
                      f"{B_['ready_s']:.2f} s on it ({E_['ready_s']:.2f} s on the empty store)"]
    if measure_lines:
        lines += ["", "test_pol_snapshot (POL_SCALE=%d):" % count] + [f"  {l}" for l in measure_lines]
    for label, gw in gws.items():
        if gw["log_warnings"]:
            lines += ["", f"gateway log ({label} store), errors and warnings:"] + [f"  {l}" for l in gw["log_warnings"]]
    ctx["policy_table"] = "\n".join(lines)   # printed at the end of the run, after the summary table


def raise_nofile():
    """Soft RLIMIT_NOFILE up to the hard limit, inherited by every server and tool started from here."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def terminate(*_):
    """SIGTERM: KeyboardInterrupt, which the per-scenario error handling lets through."""
    raise KeyboardInterrupt("SIGTERM")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--build", default=str(ROOT / "build" / "release"),
                    help="the build directory holding hsmgate and tests/ (make FLAVOUR=X all bench-tools)")
    ap.add_argument("--out", default=str(ROOT / "build" / "bench"))
    ap.add_argument("--only", default=",".join(SCENARIOS),
                    help="comma-separated scenarios among " + ", ".join(SCENARIOS) + " (default: all)")
    ap.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated among " + ", ".join(SYSTEMS))
    ap.add_argument("--idle-conns", type=int, default=0, help="idle: connections held (default 9,500; quick 2,000)")
    ap.add_argument("--pol-count", type=int, default=1000000, help="policy: revocations in the big store")
    args = ap.parse_args()
    # SIGTERM unwinds like an exception, so every server started so far is stopped by the finally blocks
    signal.signal(signal.SIGTERM, terminate)
    set_build(args.build)
    only = [x.strip() for x in args.only.split(",") if x.strip()]
    for x in only:
        if x not in SCENARIOS:
            raise SystemExit(f"unknown scenario {x!r}: choose among {', '.join(SCENARIOS)}")
    chosen = [x.strip() for x in args.systems.split(",") if x.strip()]
    for x in chosen:
        if x not in SYSTEMS:
            raise SystemExit(f"unknown system {x!r}: choose among {', '.join(SYSTEMS)}")
    runs, seconds, concurrency = (1, 3, 32) if args.quick else (3, 10, 32)
    hard = raise_nofile()
    # a proxy holds two descriptors per connection (client, backend) and the hard limit is per process
    idle_conns = args.idle_conns or (2000 if args.quick else min(9500, (hard - 400) // 2))
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    httpd = B / "tests" / "httpd"
    tools = [LOADGEN, ECHOD, httpd, HSM_BENCH, B / "hsmgate"] + ([POL_FILL] if {"policy", "revocation_scale"} & set(only)
                                                                  else [])
    for tool in tools:
        if not tool.exists():
            raise SystemExit(f"{tool} is missing: run `make FLAVOUR=... all bench-tools` (--build {B})")
    for p in compare.PEERS:
        if p in chosen and not peers.available(p):
            print(f"run.py: {p} is not installed (.ci/deps.sh bench): left out", file=sys.stderr)

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="hsmgate-bench-"))
    # One binary for the whole run, even if the tree is rebuilt meanwhile (the gateways and the CLI exec it)
    shutil.copy2(conftest.BIN, tmp / "hsmgate")
    conftest.BIN = str(tmp / "hsmgate")
    pki = Pki(tmp / "pki")
    client = pki.client("bench")
    echo_port, http_port = free_port(), free_port()
    echod = subprocess.Popen([str(ECHOD), str(echo_port)])
    httpd_p = subprocess.Popen([str(httpd), str(http_port)])
    ctx = {"pki": pki, "token": pki.token, "tmp": tmp, "client": client, "echo_port": echo_port,
           "http_port": http_port, "runs": runs, "seconds": seconds, "concurrency": concurrency, "quick": args.quick,
           "pol_count": args.pol_count, "systems": chosen, "idle_conns": idle_conns,
           "bin": {"loadgen": LOADGEN, "hsmgate": conftest.BIN, "pol_fill": POL_FILL}}
    ctx["file_servers"] = {k: file_server(ctx, k) for k in ("ec256", "rsa2048")}
    results = []
    t_start = time.time()
    try:
        time.sleep(0.2)
        for name in SCENARIOS:
            if name not in only:
                continue
            t0 = time.time()
            print(f"== {name}", file=sys.stderr)
            fn = getattr(compare, f"scenario_{name}", None) or getattr(revocation, f"scenario_{name}", None) \
                or getattr(dos, f"scenario_{name}", None) \
                or globals()[f"scenario_{name}"]
            try:
                fn(ctx, results)
            except (SystemExit, AssertionError, subprocess.SubprocessError, OSError) as e:
                # one broken scenario must not lose the others' numbers
                print(f"run.py: scenario {name} failed: {e}", file=sys.stderr)
                results.append({"name": name, "system": "-", "metric": "scenario_failed", "unit": "", "runs": 0,
                                "min": 0, "median": 0, "max": 0, "value": 0, "note": str(e)[:500]})
            print(f"== {name}: {time.time() - t0:.0f} s", file=sys.stderr)
    finally:
        for p in (echod, httpd_p):
            p.send_signal(signal.SIGTERM)
            p.wait()

    meta = {"machine": platform.node(), "cpus": os.cpu_count(), "kernel": platform.release(),
            "cpu_model": next((l.split(":", 1)[1].strip() for l in pathlib.Path("/proc/cpuinfo").read_text()
                               .splitlines() if l.startswith("model name")), "?"),
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "runs": runs, "seconds": seconds,
            "concurrency": concurrency, "quick": args.quick, "idle_conns": idle_conns, "scenarios": only,
            "systems": chosen, "workers": peers.WORKERS, "nofile_hard_limit": hard,
            "versions": dict(peers.versions(), hsmgate=subprocess.run(
                ["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True).stdout.decode().strip()),
            "duration_s": round(time.time() - t_start), "loadavg_at_end": os.getloadavg(),
            "configs": "the peers' generated configs are kept under " + str(tmp)}
    doc = {"meta": meta, "results": results}
    for k in ("policy", "revocation_latency", "raw"):
        if k in ctx:
            doc[k] = ctx[k]
    stem = "results" if set(only) == set(SCENARIOS) else "results-" + "-".join(only)
    report.write(out, stem, doc, ctx.get("policy_table", ""), tmp)


if __name__ == "__main__":
    main()
