"""A policy store that cannot be written, under the real gateway: its SQLite file (WAL and -shm included)
made "full" (ENOSPC), "read-only" (EROFS), or unable to sync (writes land, fsync fails with EIO) by
tests/fault/fsfault.c, an LD_PRELOAD library that fails the gateway's write calls on files under the
store's path while a trigger file exists (tests run as root, so chmod would not stop SQLite, and mounting
a small file system is not allowed everywhere).

While the store cannot be written every change over the admin API (a revocation, a batch, a lift, an
allowlist entry, a CRL import, removing an entry or a CRL, issuing a certificate) answers 503 with a
problem document and Retry-After, and nothing is half-applied: the lists, the audit trail (which still
verifies), the data plane (a client whose revocation was refused still gets in) and the metrics are as
before; reads still answer, /v1/health says the store is degraded, the gateway stays up. Once the trigger
is gone the same requests succeed without a restart, are on disk (read back with Python's sqlite3 and by
a restarted gateway) and are enforced at the next handshake. Last, a change refused while the store fails
again does not come back when the gateway is killed and restarted (SQLite rebuilding its WAL index from
the WAL file must not find it there).

No sleep is an assertion: everything the gateway does after a change is polled for with a deadline."""
import json
import os
import pathlib
import sqlite3
import time

import pytest

from conftest import BIN, ROOT, free_port, listener, run, client_ctx
from test_admin import Api, WAIT, handshake, metric, wait_refused, role_tokens
from test_admin_ca import make_csr
from test_policies import OpenSslCa

FSFAULT = os.environ.get("HSMGATE_FSFAULT") or str(ROOT / "build" / "release" / "tests" / "libfsfault.so")


def fault_env(store, trigger, log):
    """The environment that preloads the fault library into the gateway. AddressSanitizer refuses to run
    when another library is preloaded before its runtime: verify_asan_link_order=0 lets it (harmless for
    a binary without ASan). Under HSMGATE_WRAPPER (valgrind) the variables reach the gateway too: valgrind
    adds its own preloads to LD_PRELOAD and keeps ours."""
    if not pathlib.Path(FSFAULT).exists():
        pytest.fail(f"{FSFAULT} is missing: run `make all` first")
    asan = os.environ.get("ASAN_OPTIONS", "")
    return {
        "LD_PRELOAD": " ".join(x for x in (FSFAULT, os.environ.get("LD_PRELOAD", "")) if x),
        "HSMGATE_FSFAULT_PREFIX": str(store),
        "HSMGATE_FSFAULT_TRIGGER": str(trigger),
        "HSMGATE_FSFAULT_LOG": str(log),
        "ASAN_OPTIONS": (asan + ":" if asan else "") + "verify_asan_link_order=0",
    }


class Setup:
    """A gateway with a two-way listener trusting the HSM root (mtls), one whose policy requires an
    allowlist (partners), a policy store, and the admin API whose CA is the root; the fault library is
    preloaded with the store as its prefix."""

    def __init__(self, pki, gateway, echo, tmp_path):
        self.pki, self.gateway, self.echo, self.tmp = pki, gateway, echo, tmp_path
        self.tf, self.tokens = role_tokens(tmp_path)
        self.store = tmp_path / "policy.db"
        self.trigger = tmp_path / "fsfault.trigger"
        self.fault_log = tmp_path / "fsfault.log"
        self.g = self.api = None

    def start(self):
        port = free_port()
        admin = (f'{{ bind: "127.0.0.1:{port}", tokens_file: "{self.tf}", ca_certificate: "{self.pki.root}", '
                 f'ca_key: "{self.pki.token.uri("root")}", client_validity: 30d, crl_validity: 2d }}')
        partners = dict(listener(self.pki, "partners", self.echo.port, auth="two-way"))
        partners.pop("client_ca")
        partners["policy"] = "partners"
        g = self.gateway([listener(self.pki, "mtls", self.echo.port, auth="two-way"), partners], start=False,
                         policy_store=f'"{self.store}"', admin=admin,
                         policies=f'{{ partners: {{ client_ca: ["{self.pki.root}"], require_allowlist: true }} }}')
        g.extra_env = fault_env(self.store, self.trigger, self.fault_log)
        g.start()
        g.wait_log("admin API on 127.0.0.1:%d" % port)
        self.g, self.api = g, Api(port)
        return self

    def call(self, method, path, role="operator", body=None, rid=None, ctype="application/json"):
        headers = {"X-Request-Id": rid} if rid else None
        return self.api.call(method, path, self.tokens[role], body, ctype=ctype, headers=headers)

    def get(self, path):
        return self.api.json("GET", path, self.tokens["reader"])

    def alive(self):
        assert self.g.proc.poll() is None, f"the gateway died ({self.g.proc.returncode}):\n{self.g.log()}"

    def state(self):
        """Everything a change could touch, as the API reads it."""
        audit = self.get("/v1/audit?limit=1000")
        assert audit["next"] is None, audit["next"]
        return {
            "revocations": self.get("/v1/revocations?limit=1000")["items"],
            "allowlists": self.get("/v1/allowlists?limit=1000")["items"],
            "partners": self.get("/v1/allowlists/partners/entries?limit=1000")["items"],
            "crls": self.get("/v1/crls?limit=1000")["items"],
            "certificates": self.get("/v1/certificates?limit=1000")["items"],
            "audit": audit["items"],
            "verify": self.get("/v1/audit/verify"),
        }

    def metrics(self):
        text = self.api.call("GET", "/metrics")[2].decode()
        return {k: metric(text, k) for k in ("hsmgate_policy_generation", "hsmgate_policy_revocations",
                                              "hsmgate_policy_allowlist_entries")}

    def in_force(self, gen):
        """Waits until the data plane decides with store generation >= gen."""
        deadline = time.time() + WAIT
        while (self.metrics()["hsmgate_policy_generation"] or 0) < gen:
            assert time.time() < deadline, f"generation {gen} not in force:\n{self.g.log()}"
            time.sleep(0.02)


def wait_admitted(port, ctx):
    deadline = time.time() + WAIT
    while not handshake(port, ctx):
        assert time.time() < deadline, "still refused"
        time.sleep(0.01)


def all_records(path):
    """The store's rows read straight from the file with Python's sqlite3 (WAL mode: a reader beside
    the gateway sees every committed transaction)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {
            "revocations": db.execute("SELECT count(*) FROM revocations").fetchone()[0],
            "allowlist": db.execute("SELECT list, match, value FROM allowlist ORDER BY id").fetchall(),
            "crls": db.execute("SELECT name FROM crls ORDER BY id").fetchall(),
            "issued": db.execute("SELECT count(*) FROM issued").fetchone()[0],
            "request_ids": [r[0] for r in db.execute("SELECT request_id FROM changes ORDER BY id")],
            "generation": int(db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0]),
        }
    finally:
        db.close()


@pytest.mark.parametrize("mode", ["enospc", "erofs", "fsync"])
def test_unwritable_store_refuses_then_recovers(pki, gateway, echo, tmp_path, mode):
    s = Setup(pki, gateway, echo, tmp_path).start()
    root_pem = pki.root.read_text()
    mtls, partners_port = s.g.port("mtls"), s.g.port("partners")

    # ---- before: state for the refused changes to touch
    victim = pki.client(f"fsf-victim-{mode}")
    holder = pki.client(f"fsf-holder-{mode}")
    keeper = pki.client(f"fsf-keeper-{mode}")
    newcomer = pki.client(f"fsf-newcomer-{mode}")
    partner = OpenSslCa(tmp_path / "partner")
    partner_victim = partner.client("fsf-partner-victim")
    crl1, crl2 = partner.crl(1), partner.crl(2, revoked=[partner_victim])
    status, _, raw = s.call("POST", "/v1/revocations", body={"certificate": holder[0].read_text(),
                                                              "reason": "certificateHold"}, rid=f"pre-hold-{mode}")
    assert status == 201, raw
    status, _, raw = s.call("POST", "/v1/allowlists/partners/entries",
                            body={"match": "cn", "value": f"client-fsf-keeper-{mode}"}, rid=f"pre-allow-{mode}")
    assert status == 201, raw
    keeper_id = json.loads(raw)["id"]
    status, _, raw = s.call("POST", "/v1/crls/partner", body={"ca": partner.pem.read_text(), "crl": crl1.read_text()},
                            rid=f"pre-crl-{mode}")
    assert status == 201, raw
    s.in_force(json.loads(raw)["generation"])
    victim_ctx, holder_ctx = client_ctx(pki, cert=victim), client_ctx(pki, cert=holder)
    keeper_ctx, newcomer_ctx = client_ctx(pki, cert=keeper), client_ctx(pki, cert=newcomer)
    assert handshake(mtls, victim_ctx)
    assert not handshake(mtls, holder_ctx)
    assert handshake(partners_port, keeper_ctx)
    assert not handshake(partners_port, newcomer_ctx)
    _, csr = make_csr(tmp_path, "fsf-issued", f"/CN=fsf-issued-{mode}/O=hsmgate tests")
    before, m_before = s.state(), s.metrics()
    assert before["verify"]["intact"] is True, before["verify"]
    on_disk = all_records(s.store)
    health = s.api.json("GET", "/v1/health")
    assert health["status"] == "ok" and health["store"]["status"] == "ok", health

    changes = [
        ("revoke", "POST", "/v1/revocations", "operator",
         {"certificate": victim[0].read_text(), "reason": "keyCompromise"}, 201),
        ("batch", "POST", "/v1/revocations/batch", "operator",
         {"issuer_certificate": root_pem, "revocations": [{"serial": "0FA001"}, {"serial": "0FA002"}]}, 200),
        ("lift", "POST", "/v1/revocations/lift", "operator", {"certificate": holder[0].read_text()}, 200),
        ("allow", "POST", "/v1/allowlists/partners/entries", "operator",
         {"match": "cn", "value": f"client-fsf-newcomer-{mode}"}, 201),
        ("crl", "POST", "/v1/crls/partner", "operator", {"crl": crl2.read_text()}, 200),
        ("unallow", "DELETE", f"/v1/allowlists/partners/entries/{keeper_id}", "operator", None, 200),
        ("issue", "POST", "/v1/certificates", "admin", {"csr": csr, "validity_days": 5}, 201),
        ("uncrl", "DELETE", "/v1/crls/partner", "operator", None, 200),
    ]

    # ---- the fault: every change refused with 503, nothing applied
    s.trigger.write_text(mode)
    for name, method, path, role, body, _ in changes:
        status, headers, raw = s.call(method, path, role, body, rid=f"fault-{name}-{mode}")
        what = f"{method} {path} during {mode}: {status} {raw[:300]!r}"
        assert status == 503, what
        assert headers.get("Content-Type", "").startswith("application/problem+json"), what
        problem = json.loads(raw)
        assert problem["status"] == 503 and problem["title"] and problem.get("detail"), what
        assert headers.get("Retry-After"), what
        s.alive()
        # reads answer, and show nothing of the refused change
        assert s.state() == before, what
    log = s.fault_log.read_text() if s.fault_log.exists() else ""
    said = {"enospc": "ENOSPC", "erofs": "EROFS", "fsync": "EIO"}[mode]
    assert f"{s.store}-wal -> {said}" in log, f"the fault library never failed a write of the WAL:\n{log}"
    # the data plane decides as before: the refused revocation, lift and allowlist changes are not in force
    assert handshake(mtls, victim_ctx), "a client whose revocation was refused is refused"
    assert not handshake(mtls, holder_ctx), "a hold whose lift was refused is lifted"
    assert handshake(partners_port, keeper_ctx), "an entry whose removal was refused is gone"
    assert not handshake(partners_port, newcomer_ctx), "an entry whose addition was refused is in force"
    assert s.metrics() == m_before
    # health answers and says the store cannot be written
    status, _, raw = s.api.call("GET", "/v1/health")
    health = json.loads(raw)
    print(f"/v1/health during {mode}: {status} {health}")
    assert status == 503 and health["status"] == "degraded", (status, health)
    assert health["store"]["status"] == "degraded" and health["store"].get("writable") is False, health
    assert "disk" in health["store"]["write_error"] and health["store"]["write_failing_since"], health
    # the trail still verifies, with the CLI too, and has no record of a refused change
    v = run([BIN, "audit", "verify", "--store", str(s.store)], check=False)
    assert v.returncode == 0 and b"intact" in v.stdout + v.stderr, v
    assert all_records(s.store) == on_disk
    s.alive()

    # ---- the store writes again: the same changes succeed, without a restart
    s.trigger.unlink()
    gen = 0
    for name, method, path, role, body, want in changes:
        status, _, raw = s.call(method, path, role, body, rid=f"ok-{name}-{mode}")
        assert status == want, f"{method} {path} after {mode}: {status} {raw[:300]!r}\n{s.g.log()}"
        gen = max(gen, json.loads(raw)["generation"])
    s.alive()
    s.in_force(gen)
    wait_refused(mtls, victim_ctx)
    wait_admitted(mtls, holder_ctx)
    wait_refused(partners_port, keeper_ctx)
    wait_admitted(partners_port, newcomer_ctx)
    health = s.api.json("GET", "/v1/health")
    assert health["status"] == "ok" and health["store"]["status"] == "ok" and health["store"]["writable"], health
    assert health["store"]["write_error"] is None, health
    after = s.state()
    assert after["verify"]["intact"] is True and after["verify"]["records"] == before["verify"]["records"] + len(changes)
    rids = [a.get("request_id") for a in after["audit"]]
    assert not [r for r in rids if r and r.startswith("fault-")], rids
    assert all(rids.count(f"ok-{name}-{mode}") == 1 for name, *_ in changes), rids
    serials = {r["serial"] for r in after["revocations"]}
    assert {"0FA001", "0FA002"} <= serials and len(after["revocations"]) == len(before["revocations"]) + 2, after
    assert [e["value"] for e in after["partners"]] == [f"client-fsf-newcomer-{mode}"], after["partners"]
    assert after["crls"] == [] and len(after["certificates"]) == len(before["certificates"]) + 1, after
    m = s.metrics()
    assert m["hsmgate_policy_revocations"] == len(after["revocations"]), (m, after["revocations"])

    # ---- durable: in the file (and below, for a gateway restarted after a crash)
    disk = all_records(s.store)
    assert disk["generation"] == gen and disk["revocations"] == len(after["revocations"]), disk
    assert disk["allowlist"] == [("partners", "cn", f"client-fsf-newcomer-{mode}")] and disk["crls"] == [], disk
    assert disk["issued"] == 1 and [r for r in disk["request_ids"] if r and r.startswith("ok-")] == \
        [f"ok-{name}-{mode}" for name, *_ in changes], disk

    # ---- the store fails again, a change is refused, and the gateway dies before the store comes back
    # (SIGKILL: no clean close, so SQLite rebuilds its WAL index from the WAL file at the next start):
    # the refused change must not come back with it.
    late = pki.client(f"fsf-late-{mode}")
    late_ctx = client_ctx(pki, cert=late)
    assert handshake(mtls, late_ctx)
    entry = after["partners"][0]["id"]
    s.trigger.write_text(mode)
    for name, method, path, body in [
            ("revoke", "POST", "/v1/revocations", {"certificate": late[0].read_text()}),
            ("unallow", "DELETE", f"/v1/allowlists/partners/entries/{entry}", None)]:
        status, _, raw = s.call(method, path, body=body, rid=f"late-{name}-{mode}")
        assert status == 503, f"{method} {path} during {mode} again: {status} {raw[:300]!r}"
    s.g.proc.kill()
    s.g.proc.wait()
    s.trigger.unlink()
    s.start()
    assert s.state() == after, "a change refused with 503 came back after a restart"
    s.in_force(gen)
    assert not handshake(s.g.port("mtls"), victim_ctx)
    assert handshake(s.g.port("mtls"), late_ctx)
    assert handshake(s.g.port("partners"), newcomer_ctx)
    assert all_records(s.store) == disk
    v = run([BIN, "audit", "verify", "--store", str(s.store)], check=False)
    assert v.returncode == 0 and b"intact" in v.stdout + v.stderr, v
