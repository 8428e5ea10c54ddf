#!/usr/bin/python3
"""The benchmark report: results JSON, the Markdown table (with a ratio column: hsmgate / best peer), the
issue's goals (met or not, by how much) and PNG charts drawn with gnuplot.

run.py calls write(); to redraw from a saved run:  tests/bench/report.py build/bench/results.json
"""
import json
import math
import pathlib
import shutil
import subprocess
import sys

PEERS = ("nginx", "HAProxy", "stunnel")
HIGHER = {"1/s", "MB/s"}                       # rates: higher is better
LOWER = {"us", "ms", "KiB", "MiB"}             # costs: lower is better
NO_RATIO = {"errors", "resumed_fraction", "rate_ratio", "scenario_failed", "failed"}

# name, metric, title, file
CHARTS = [
    ("full_handshake_tls13_p256_mtls", "handshakes_per_s", "Full mTLS handshakes/s, TLS 1.3, P-256", "handshakes_tls13_p256"),
    ("full_handshake_tls13_p256_mtls", "server_cpu_per_handshake", "Server CPU per full handshake (us), TLS 1.3, P-256",
     "cpu_per_handshake_tls13_p256"),
    ("full_handshake_tls13_rsa2048_mtls", "handshakes_per_s", "Full mTLS handshakes/s, TLS 1.3, RSA-2048",
     "handshakes_tls13_rsa2048"),
    ("full_handshake_tls12_p256_mtls", "handshakes_per_s", "Full mTLS handshakes/s, TLS 1.2, P-256", "handshakes_tls12_p256"),
    ("resumed_handshake_tls13_p256_mtls", "resumed_per_s", "Resumed handshakes/s, TLS 1.3 (PSK)", "resumed_tls13"),
    ("keepalive_https_tls13_p256_mtls", "requests_per_s", "Keep-alive HTTPS requests/s, TLS 1.3", "keepalive_rps"),
    ("bulk_tcp_tls13_aes128gcm", "throughput", "Bulk MB/s, one TLS 1.3 stream, AES-128-GCM", "bulk_aes128gcm"),
    ("bulk_tcp_tls13_chacha20", "throughput", "Bulk MB/s, one TLS 1.3 stream, ChaCha20-Poly1305", "bulk_chacha20"),
    ("idle_connections_", "memory_per_connection", "Memory per idle mTLS connection (KiB)", "idle_memory"),
]


def fmt(v):
    if v is None or (isinstance(v, float) and (math.isnan(v) or math.isinf(v))):
        return str(v)
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}"


def is_peer(system):
    return system.split(" ")[0] in PEERS


def ratios(results):
    """{index of an hsmgate row: (ratio, best peer's system)} for every (name, metric) that has peers."""
    groups = {}
    for i, r in enumerate(results):
        groups.setdefault((r["name"], r["metric"]), []).append(i)
    out = {}
    for (_, metric), idx in groups.items():
        unit = results[idx[0]]["unit"]
        if metric in NO_RATIO or (unit not in HIGHER and unit not in LOWER):
            continue
        prs = [results[i] for i in idx if is_peer(results[i]["system"])]
        if not prs:
            continue
        best = (max if unit in HIGHER else min)(prs, key=lambda r: r["median"])
        for i in idx:
            r = results[i]
            if r["system"].startswith("hsmgate") and best["median"]:
                out[i] = (r["median"] / best["median"], best["system"])
    return out


def find(results, name, metric, system=None, prefix=False):
    for r in results:
        if (r["name"].startswith(name) if prefix else r["name"] == name) and r["metric"] == metric and \
                (system is None or r["system"] == system):
            return r
    return None


def goals(results):
    """The issue's goals: [(goal, measured, met or None when not measured)]."""
    HSM = "hsmgate (key in SoftHSM)"
    rows = []

    def vs(name, metric, want, cmp, label, peer="nginx", prefix=False):
        h, p = find(results, name, metric, HSM, prefix), find(results, name, metric, peer, prefix)
        if h is None or p is None or not p["median"]:
            rows.append((label, "not measured", None))
            return
        x = h["median"] / p["median"]
        ok = x <= want if cmp == "le" else x >= want
        rows.append((label, f"{x:.2f}x ({fmt(h['median'])} vs {fmt(p['median'])} {h['unit']})"
                     + ("" if ok else f"; missed by {abs(x - want) / want * 100:.0f}%"), ok))

    for ver in ("13", "12"):
        for key in ("p256", "rsa2048"):
            n = f"full_handshake_tls{ver}_{key}_mtls"
            vs(n, "server_cpu_per_handshake", 0.8, "le", f"server CPU per full handshake, SoftHSM key, <= 0.8x nginx "
               f"(TLS 1.{ver[1]}, {key})")
            vs(n, "handshakes_per_s", 1.2, "ge", f"full handshakes/s >= 1.2x nginx (TLS 1.{ver[1]}, {key})")
    for ver in ("13", "12"):
        vs(f"resumed_handshake_tls{ver}_p256_mtls", "resumed_per_s", 1.0, "ge",
           f"resumed handshakes/s >= nginx, re-check on (TLS 1.{ver[1]})")
    for c in ("aes128gcm", "chacha20"):
        vs(f"bulk_tcp_tls13_{c}", "throughput", 1.0, "ge", f"bulk throughput >= 1.0x nginx stream ({c})")
    vs("idle_connections_", "memory_per_connection", 1.0, "le", "memory per idle connection <= nginx", prefix=True)
    m = find(results, "idle_connections_", "memory_per_connection", HSM, prefix=True)
    rows.append(("memory per idle connection < 40 KiB", f"{m['median']:.1f} KiB" if m else "not measured",
                 (m["median"] < 40) if m else None))
    r = find(results, "revocations_rate_ratio", "rate_ratio", "hsmgate (1,000,000 revoked / none)")
    rows.append(("full-handshake rate with 1,000,000 revocations >= 0.97x none",
                 f"{r['median']:.3f}" if r else "not measured", (r["median"] >= 0.97) if r else None))
    r = find(results, "revocation_api_ack_to_enforcement_to_refused_handshake_end", "latency_p99")
    rows.append(("revocation acknowledged -> refused handshake (its end), p99 < 50 ms",
                 f"p99 {r['median']:.1f} ms (p50 {r['p50']:.1f}, n {r['n']})" if r else "not measured",
                 (r["median"] < 50) if r else None))
    r = find(results, "revocation_api_ack_to_enforcement_to_live_connection_closed", "latency_p99")
    rows.append(("revocation acknowledged -> live connection closed, < 1 s",
                 f"max {r['max_']:.1f} ms, p99 {r['median']:.1f} ms" if r else "not measured",
                 (r["max_"] < 1000) if r else None))
    for system in ("hsmgate (default limits)", "hsmgate (rate 150/s per address)"):
        r = find(results, "dos_legit_normal_rate_ratio", "rate_ratio", system)
        rows.append((f"issue 7: legitimate clients keep >= 90% of their normal rate under slowloris + handshake flood, "
                     f"{system}", f"{r['median']:.3f} ({r.get('note', '')})" if r else "not measured",
                     (r["median"] >= 0.9) if r else None))
    return rows


def markdown(doc, extra=""):
    results = doc["results"]
    rat = ratios(results)
    lines = ["| scenario | metric | system | median | min | max | runs | ratio (hsmgate / best peer) |",
             "|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(results):
        ratio = f"{rat[i][0]:.2f} (vs {rat[i][1]})" if i in rat else ""
        lines.append(f"| {r['name']} | {r['metric']} | {r['system']} | {fmt(r['median'])} {r['unit']} | "
                     f"{fmt(r['min'])} | {fmt(r['max'])} | {r['runs']} | {ratio} |")
    lines += ["", "| goal | measured | met |", "|---|---|---|"]
    for g, m, ok in goals(results):
        lines.append(f"| {g} | {m} | {'-' if ok is None else 'yes' if ok else '**no**'} |")
    meta = doc["meta"]
    lines += ["", f"Machine: {meta.get('machine')}, {meta.get('cpus')} CPUs ({meta.get('cpu_model')}), kernel "
              f"{meta.get('kernel')}; {meta.get('date')}; {meta.get('runs')} run(s) of {meta.get('seconds')} s per "
              f"figure; {meta.get('concurrency')} connections; {meta.get('workers')} workers/threads per server; "
              f"load average at the end {meta.get('loadavg_at_end')}.", "",
              "Versions: " + "; ".join(f"{k}: {v}" for k, v in meta.get("versions", {}).items())]
    return "\n".join(lines) + ("\n\n" + extra if extra else "") + "\n"


def charts(doc, out):
    """PNG bar charts of the main comparisons; returns the files written (none without gnuplot)."""
    gp = shutil.which("gnuplot")
    if gp is None:
        print("report: gnuplot is not installed (.ci/deps.sh bench): no charts", file=sys.stderr)
        return []
    made = []
    for name, metric, title, stem in CHARTS:
        rows = [r for r in doc["results"] if (r["name"].startswith(name) if name.endswith("_") else r["name"] == name)
                and r["metric"] == metric]
        if not rows:
            continue
        dat = out / f"{stem}.dat"
        dat.write_text("".join(f"\"{r['system']}\" {r['median']} {r['min']} {r['max']}\n" for r in rows))
        png = out / f"{stem}.png"
        script = f"""set terminal pngcairo size 900,480 font ",10"
set output "{png}"
set title "{title} (median; bars: min-max)"
set ylabel "{rows[0]['unit']}"
set yrange [0:*]
set style fill solid 0.6 border -1
set boxwidth 0.6
set grid ytics
set xtics rotate by -15 noenhanced
set key off
plot "{dat}" using 0:2:xtic(1) with boxes lc rgb "#4a7ab5", \\
     "" using 0:2:3:4 with yerrorbars lc rgb "black" pt 0, \\
     "" using 0:2:(sprintf("%.{0 if rows[0]['median'] >= 100 else 1}f", $2)) with labels offset 0,1.2
"""
        r = subprocess.run([gp], input=script.encode(), capture_output=True)
        if r.returncode == 0:
            made.append(png)
        else:
            print(f"report: gnuplot failed for {stem}: {r.stderr.decode()[-300:]}", file=sys.stderr)
        dat.unlink()
    return made


def write(out, stem, doc, extra="", tmp=None):
    out = pathlib.Path(out)
    (out / f"{stem}.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    md = markdown(doc, extra)
    pngs = charts(doc, out)
    if pngs:
        md += "\nCharts: " + ", ".join(p.name for p in pngs) + "\n"
    (out / f"{stem}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: report.py RESULTS.json")
    src = pathlib.Path(sys.argv[1])
    d = json.loads(src.read_text())
    write(src.parent, src.stem, d)
