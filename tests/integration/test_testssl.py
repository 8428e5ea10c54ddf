"""testssl.sh (Debian's package) against a one-way https listener whose key is in the HSM: no finding of
severity HIGH or CRITICAL. The server certificate comes from the test root (added to testssl's trust
with --add-ca) and names the CRL the admin API serves (hsmgate pki server --crl-url), as a deployment
would. What testssl rates LOW or MEDIUM is printed for the record (docs/security.md discusses it)."""
import json
import shutil
import subprocess

import pytest

from conftest import free_port, listener
from https_backend import HttpBackend


def test_testssl_finds_nothing_high(pki, gateway, tmp_path):
    testssl = shutil.which("testssl") or shutil.which("testssl.sh")
    assert testssl, "testssl.sh is not installed: run `make deps` (.ci/deps.sh installs it)"
    aport = free_port()
    t = pki.token
    t.keygen("server-testssl", "ec:P-256")
    cert = tmp_path / "server-testssl.pem"
    t.pki("server", "--ca-key", t.uri("root"), "--ca-cert", str(pki.root), "--key", t.uri("server-testssl"),
          "--subject", "/CN=localhost", "--san", "DNS:localhost", "--san", "IP:127.0.0.1",
          "--crl-url", f"http://127.0.0.1:{aport}/crl", "--out", str(cert))
    backend = HttpBackend("echo")
    try:
        g = gateway([dict(listener(pki, "web", backend.port, type="https"), certificate=cert,
                          key=t.uri("server-testssl"))],
                    admin=f'{{ bind: "127.0.0.1:{aport}", ca_certificate: "{pki.root}", ca_key: "{t.uri("root")}" }}')
        out = tmp_path / "testssl.json"
        r = subprocess.run([testssl, "--quiet", "--color", "0", "--warnings", "batch", "--add-ca", str(pki.root),
                            "--jsonfile", str(out), f"127.0.0.1:{g.port('web')}"], capture_output=True, timeout=900)
        assert out.exists(), (r.returncode, r.stdout.decode(errors="replace")[-3000:], r.stderr.decode(errors="replace"))
        findings = json.loads(out.read_text())
        assert len(findings) > 50, findings     # a real scan, not an aborted one
        bad = [f for f in findings if f.get("severity") in ("HIGH", "CRITICAL")]
        for f in findings:
            if f.get("severity") in ("LOW", "MEDIUM", "WARN"):
                print(f"testssl {f['severity']}: {f['id']}: {f['finding']}")
        assert not bad, "\n".join(f"{f['severity']} {f['id']}: {f['finding']}" for f in bad)
        assert g.proc.poll() is None
    finally:
        backend.close()
