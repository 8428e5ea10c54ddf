"""`make install` into a DESTDIR: what lands where, the installed binaries run (against a SoftHSM
token, with the installed example configurations), the man pages render, and `make uninstall`
removes every file it installed."""
import os
import re
import shutil
import subprocess
import time

import pytest

from conftest import ROOT, client_ctx, free_port, roundtrip, run

FLAVOUR = os.environ.get("HSMGATE_FLAVOUR", "release")
FILES = ["usr/sbin/hsmgate", "usr/bin/hsmgatectl", "usr/share/man/man8/hsmgate.8", "usr/share/man/man1/hsmgatectl.1",
         "etc/hsmgate/hsmgate.yaml.example", "usr/share/doc/hsmgate/examples/hsmgate.yaml",
         "usr/share/doc/hsmgate/examples/policies.yaml", "usr/share/doc/hsmgate/operations.md",
         "usr/share/doc/hsmgate/configuration.md", "usr/lib/systemd/system/hsmgate.service",
         "usr/lib/sysusers.d/hsmgate.conf"]


def make(target, dest, *extra):
    return run(["make", "-C", str(ROOT), "-s", target, f"FLAVOUR={FLAVOUR}", f"DESTDIR={dest}", *extra], timeout=600)


@pytest.fixture
def installed(tmp_path):
    dest = tmp_path / "dest"
    make("install", dest, "PREFIX=/usr")
    return dest


def adapt(text, tmp_path, pki, echo_port, uri, cert):
    """An installed example made to run here: its paths into tmp_path, its key and certificates the
    test PKI's, its ports free ones, its backends the echo server."""
    text = text.replace('"pkcs11:token=hsmgate;object=server;type=private"', f'"{uri}"')
    text = text.replace("/etc/hsmgate/server-chain.pem", str(cert))
    text = text.replace("file:/etc/hsmgate/hsm.pin", f"file:{pki.token.pin_file}")
    for ca in re.findall(r"/etc/hsmgate/[a-z-]*ca\.pem", text):
        text = text.replace(ca, str(pki.root))
    for d in ("/etc/hsmgate/", "/var/lib/hsmgate/", "/var/log/hsmgate/", "/run/hsmgate/"):
        text = text.replace(d, f"{tmp_path}/")
    text = re.sub(r"0\.0\.0\.0:\d+", lambda m: f"127.0.0.1:{free_port()}", text)
    text = re.sub(r"127\.0\.0\.1:9440", lambda m: f"127.0.0.1:{free_port()}", text)
    text = re.sub(r"127\.0\.0\.1:7\d\d\d", f"127.0.0.1:{echo_port}", text)
    return text


def test_install_layout_and_uninstall(tmp_path):
    dest = tmp_path / "dest"
    make("install", dest, "PREFIX=/usr")
    for f in FILES:
        assert (dest / f).is_file(), f"{f} not installed"
    assert os.access(dest / "usr/sbin/hsmgate", os.X_OK) and os.access(dest / "usr/bin/hsmgatectl", os.X_OK)
    assert "ExecStart=/usr/sbin/hsmgate run -c /etc/hsmgate/hsmgate.yaml" in \
        (dest / "usr/lib/systemd/system/hsmgate.service").read_text()
    # An operator's own configuration next to the example survives uninstall.
    own = dest / "etc/hsmgate/hsmgate.yaml"
    own.write_text("# mine\n")
    make("uninstall", dest, "PREFIX=/usr")
    left = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert left == ["etc/hsmgate/hsmgate.yaml"], left
    assert not (dest / "usr/share/doc/hsmgate").exists()

    # PREFIX=/usr/local (the default): configuration under /usr/local/etc, unit where systemd looks.
    local = tmp_path / "local"
    make("install", local)
    for f in ["usr/local/sbin/hsmgate", "usr/local/bin/hsmgatectl", "usr/local/etc/hsmgate/hsmgate.yaml.example",
              "usr/local/lib/systemd/system/hsmgate.service", "usr/local/share/man/man8/hsmgate.8"]:
        assert (local / f).is_file(), f
    assert "-c /usr/local/etc/hsmgate/hsmgate.yaml" in (local / "usr/local/lib/systemd/system/hsmgate.service").read_text()
    make("uninstall", local)
    assert [p for p in local.rglob("*") if p.is_file()] == []


def test_man_pages_render(installed):
    if shutil.which("man") is None and shutil.which("groff") is None:
        pytest.skip("neither man nor groff is installed (Debian packages man-db, groff-base)")
    for page, name in [("usr/share/man/man8/hsmgate.8", "hsmgate"), ("usr/share/man/man1/hsmgatectl.1", "hsmgatectl")]:
        path = installed / page
        if shutil.which("man"):
            r = run(["man", "-l", str(path)], env=dict(os.environ, MANPAGER="cat", PAGER="cat", MANWIDTH="100"))
        else:
            r = run(["groff", "-man", "-Tutf8", str(path)])
        text = r.stdout.decode()
        assert "NAME" in text and name in text and "SYNOPSIS" in text and "EXIT STATUS" in text, text
        assert not r.stderr.strip(), r.stderr
        # groff's own warnings (-ww) on the source: none
        if shutil.which("groff"):
            w = run(["groff", "-man", "-Tutf8", "-ww", "-z", str(path)])
            assert not w.stderr.strip(), w.stderr


def test_installed_binaries_run_the_examples(installed, tmp_path, pki, echo):
    hsmgate = str(installed / "usr/sbin/hsmgate")
    ctl = str(installed / "usr/bin/hsmgatectl")
    assert run([hsmgate, "version"]).stdout.startswith(b"hsmgate ")
    assert b"Commands:" in run([ctl, "--help"]).stdout
    uri, cert = pki.servers["ec256"]
    tokens = tmp_path / "admin.tokens"
    r = run([hsmgate, "admin", "token", "ops", "reader"])
    tokens.write_bytes(r.stderr)
    os.chmod(tokens, 0o600)
    token = tmp_path / "ops.token"
    token.write_bytes(r.stdout)
    os.chmod(token, 0o600)
    for example in ("etc/hsmgate/hsmgate.yaml.example", "usr/share/doc/hsmgate/examples/policies.yaml"):
        cfg = tmp_path / (os.path.basename(example).replace(".example", "") + ".run.yaml")
        cfg.write_text(adapt((installed / example).read_text(), tmp_path, pki, echo.port, uri, cert))
        r = run([hsmgate, "check", "-c", str(cfg)], env=pki.token.env, check=False)
        assert r.returncode == 0 and b"configuration OK" in r.stdout, (cfg.read_text(), r.stderr.decode())
    # The installed gateway serves with the installed example (as root: --allow-root, as the example
    # leaves user: for systemd to handle).
    cfg = tmp_path / "hsmgate.yaml.run.yaml"
    port = int(re.search(r"bind: 127\.0\.0\.1:(\d+)\n    auth: two-way", cfg.read_text()).group(1))
    errlog = open(tmp_path / "gateway.log", "ab")
    args = [hsmgate, "run", "-c", str(cfg)] + (["--allow-root"] if os.geteuid() == 0 else [])
    p = subprocess.Popen(args, stdout=errlog, stderr=errlog, env=pki.token.env)
    try:
        deadline = time.time() + 30
        while "ready:" not in (tmp_path / "gateway.log").read_text():
            assert p.poll() is None and time.time() < deadline, (tmp_path / "gateway.log").read_text()
            time.sleep(0.05)
        client = pki.client("install")
        assert roundtrip(port, client_ctx(pki, cert=client))[0] == b"hello hsmgate\n"
        r = run([ctl, "--unix-socket", str(tmp_path / "admin.sock"), "status"],
                env=dict(os.environ, HSMGATE_TOKEN_FILE=str(token)))
        assert b"payments" in r.stdout, r.stdout
    finally:
        p.terminate()
        assert p.wait(30) == 0
        errlog.close()
        print((tmp_path / "gateway.log").read_text())
