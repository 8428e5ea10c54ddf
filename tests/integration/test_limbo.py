"""x509-limbo path-validation vectors (C2SP/x509-limbo) against `hsmgate verify`.

The vectors are read from ../shared/x509-limbo/limbo-core.json beside the repository, never copied
into it. Every case whose validation_kind is CLIENT and every crl::* case runs as one test: its
trusted roots, intermediates and peer certificate go into files in the test's temporary directory,
a configuration gives a two-way listener the policy "limbo" over those roots, the case's CRLs are
imported with `hsmgate crl import`, and `hsmgate verify` must exit 0 for SUCCESS and 1 for FAILURE.

A refused CRL import is part of the outcome, as it would be in production: a CRL the import does not
accept is never consulted, and with `crl: required` the peer is then refused as crl_missing.

Cases where hsmgate reaches another result are listed in KNOWN_DEVIATIONS with the reason, and run
as strict xfails: one that starts passing fails the suite until it is taken off the list.
docs/policies.md ("Offline verification") has the table.
"""
import json
import os

import pytest

from conftest import BIN, ROOT, run

LIMBO = ROOT.parent / "shared" / "x509-limbo" / "limbo-core.json"

# `make valgrind` runs the binary under a tool: verify too (its exit status 99 then fails the test).
WRAPPER = os.environ.get("HSMGATE_WRAPPER", "").split()

# Our required_eku names are RFC 5280's, as limbo spells them.
EKU_NAMES = {"clientAuth", "serverAuth", "codeSigning", "emailProtection", "timeStamping", "OCSPSigning"}

KNOWN_DEVIATIONS = {}  # none at present: both CRL-number cases were ours, fixed in policies/crl.c

if not LIMBO.exists():
    pytest.skip(f"../shared/x509-limbo is absent ({LIMBO} not found): no x509-limbo vectors to run",
                allow_module_level=True)


def _selected():
    cases = json.loads(LIMBO.read_text())["testcases"]
    return [c for c in cases if c["validation_kind"] == "CLIENT" or c["id"].startswith("crl::")]


def _params():
    out = []
    for c in _selected():
        marks = []
        if c["id"] in KNOWN_DEVIATIONS:
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_DEVIATIONS[c["id"]]))
        # "::" would split pytest's node ids.
        out.append(pytest.param(c, id=c["id"].replace("::", ":"), marks=marks))
    return out


def _config(tmp, case):
    """The YAML for a two-way listener with the policy "limbo" over the case's trusted certificates."""
    ekus = case["extended_key_usage"]
    unknown = set(ekus) - EKU_NAMES
    assert not unknown, f"{case['id']}: EKU {sorted(unknown)} has no required_eku name here"
    crl = "required" if case["crls"] else "optional"
    lines = [
        f"policy_store: {json.dumps(str(tmp / 'store.db'))}",
        "policies:",
        "  limbo:",
        f"    client_ca: [{{file: {json.dumps(str(tmp / 'trusted.pem'))}, crl: {crl}}}]",
        # CRL cases are SERVER cases without EKUs: require none; CLIENT cases give clientAuth.
        f"    required_eku: [{', '.join(ekus)}]",
    ]
    if case["max_chain_depth"] is not None:
        # limbo counts intermediates; max_chain_depth is the trust anchor's depth (leaf 0).
        lines.append(f"    max_chain_depth: {min(case['max_chain_depth'] + 1, 16)}")
    lines += [
        "listeners:",
        "  - name: limbo",
        "    bind: 127.0.0.1:1",
        "    auth: two-way",
        "    certificate: /nonexistent/server.pem    # verify never opens it",
        "    key: \"pkcs11:token=none;object=none\"",
        "    backends: [127.0.0.1:2]",
        "    policy: limbo",
    ]
    return "\n".join(lines) + "\n"


def _import_crls(tmp, case, log):
    """Imports each CRL with the trusted certificate that signed it (the first the CLI accepts)."""
    for i, crl in enumerate(case["crls"]):
        path = tmp / f"crl{i}.pem"
        path.write_text(crl)
        for j in range(len(case["trusted_certs"])):
            r = run([BIN, "crl", "import", "--store", str(tmp / "store.db"), "--ca", str(tmp / f"trusted{j}.pem"),
                     str(path), "--actor", "test:limbo"], check=False)
            log.append(f"$ crl import --ca trusted{j}.pem crl{i}.pem -> {r.returncode}\n"
                       f"{r.stderr.decode(errors='replace').strip()}")
            assert r.returncode in (0, 1), log[-1]
            if r.returncode == 0:
                break


@pytest.mark.parametrize("case", _params())
def test_limbo(tmp_path, case):
    (tmp_path / "trusted.pem").write_text("".join(case["trusted_certs"]))
    for j, cert in enumerate(case["trusted_certs"]):
        (tmp_path / f"trusted{j}.pem").write_text(cert)
    (tmp_path / "leaf.pem").write_text(case["peer_certificate"])
    cmd = [BIN, "verify", "-c", str(tmp_path / "hsmgate.yaml"), "--listener", "limbo"]
    if case["validation_time"] is not None:
        cmd += ["--at", case["validation_time"]]
    cmd.append(str(tmp_path / "leaf.pem"))
    if case["untrusted_intermediates"]:
        (tmp_path / "chain.pem").write_text("".join(case["untrusted_intermediates"]))
        cmd.append(str(tmp_path / "chain.pem"))
    (tmp_path / "hsmgate.yaml").write_text(_config(tmp_path, case))
    log = []
    _import_crls(tmp_path, case, log)

    r = run(WRAPPER + cmd, check=False)
    j = run(WRAPPER + cmd[:2] + ["--json"] + cmd[2:], check=False)
    out = (f"{' '.join(cmd[1:])}\nexit {r.returncode}\n{r.stdout.decode(errors='replace')}"
           f"{r.stderr.decode(errors='replace')}")
    if log:
        out += "\n" + "\n".join(log)
    assert r.returncode in (0, 1), f"verify failed to run:\n{out}"
    assert j.returncode == r.returncode, f"--json exits {j.returncode}: {j.stdout!r} {j.stderr!r}\n{out}"
    verdict = json.loads(j.stdout)
    assert verdict["verdict"] == ("admit" if r.returncode == 0 else "refuse"), f"--json disagrees: {j.stdout!r}\n{out}"
    got = "SUCCESS" if r.returncode == 0 else "FAILURE"
    assert got == case["expected_result"], (
        f"{case['id']}: expected {case['expected_result']}, hsmgate verify says {got}\n"
        f"--- case ---\n{case['description'].strip()}\n--- hsmgate ---\n{out}")


def test_selection_is_complete():
    """The suite's CLIENT and crl:: cases are all here (a new limbo drop shows up as a change)."""
    ids = [c["id"] for c in _selected()]
    assert len(ids) == len(set(ids))
    assert set(KNOWN_DEVIATIONS) <= set(ids), "KNOWN_DEVIATIONS names a case that is not run"
    assert len(ids) == 18, f"expected the 10 CLIENT and 8 crl:: cases of the 2026-06-29 drop, got {len(ids)}"
