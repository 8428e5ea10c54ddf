"""hsmgate as a system service: the systemd unit (systemd-analyze verify), readiness and the watchdog
through a fake NOTIFY_SOCKET, the switch to an unprivileged user (every thread's uid in /proc), the
refusal to stay root, unsafe PIN and tokens files refused at `run`, and the error log sent to syslog.

The suite runs as root in CI; the tests that need root skip (saying why) otherwise.
"""
import os
import pathlib
import pwd
import grp
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import BIN, ROOT, Gateway, Token, client_ctx, free_port, listener, roundtrip, run

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: switching users, chown, mount namespaces")


def install(dest):
    """make install of this build's flavour into dest (PREFIX=/usr, as a Debian package would)."""
    flavour = os.environ.get("HSMGATE_FLAVOUR", "release")
    run(["make", "-C", str(ROOT), "-s", "install", f"FLAVOUR={flavour}", f"DESTDIR={dest}", "PREFIX=/usr"], timeout=600)
    return dest


# ---- the unit file ----------------------------------------------------------------------------------

def test_unit_file_verifies(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is missing (Debian package systemd; .ci/deps.sh installs it)")
    dest = install(tmp_path / "dest")
    unit = dest / "usr/lib/systemd/system/hsmgate.service"
    text = unit.read_text()
    for line in ["Type=notify", "ExecStart=/usr/sbin/hsmgate run -c /etc/hsmgate/hsmgate.yaml",
                 "ExecReload=/bin/kill -HUP $MAINPID", "WatchdogSec=", "User=hsmgate", "NoNewPrivileges=yes",
                 "ProtectSystem=strict", "StateDirectory=hsmgate", "PrivateTmp=yes",
                 "CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "AmbientCapabilities=CAP_NET_BIND_SERVICE",
                 "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "MemoryDenyWriteExecute=yes",
                 "SystemCallFilter=@system-service"]:
        assert line in text, f"{line} not in the unit:\n{text}"
    # verify checks that ExecStart's binary exists and that Documentation's man page opens: point both
    # at the DESTDIR copy (the unit itself is the installed one, only the path is moved).
    checked = tmp_path / "hsmgate.service"
    checked.write_text(text.replace("/usr/sbin/hsmgate", str(dest / "usr/sbin/hsmgate")))
    env = dict(os.environ, MANPATH=str(dest / "usr/share/man"))
    r = subprocess.run(["systemd-analyze", "verify", str(checked)], capture_output=True, env=env, timeout=60)
    assert r.returncode == 0 and r.stderr.strip() == b"", r.stderr.decode()
    # The sysusers.d entry makes the unit's user.
    assert (dest / "usr/lib/sysusers.d/hsmgate.conf").read_text().splitlines()[-1].startswith("u hsmgate ")


# ---- sd_notify --------------------------------------------------------------------------------------

class FakeNotify:
    """A Unix datagram socket standing in for systemd's NOTIFY_SOCKET; records (time, fields)."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages = []
        self.on_ready = None
        self.stop = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stop:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            fields = dict(l.split("=", 1) for l in data.decode().splitlines() if "=" in l)
            # Checked here, on the thread that received it, before anything else can happen.
            if fields.get("READY") == "1" and self.on_ready is not None and not any(
                    m.get("READY") == "1" for m in self.messages):
                fields["_listeners_at_ready"] = self.on_ready()
            self.messages.append(fields)

    def wait(self, pred, what, proc, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for i, m in enumerate(self.messages):
                if pred(i, m):
                    return i, m
            if proc.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"no {what} from the gateway: {self.messages}")

    def close(self):
        self.stop = True
        self.thread.join()
        self.sock.close()


def ports_accepting(ports):
    """For each port: does a TCP connection succeed right now?"""
    out = {}
    for p in ports:
        try:
            socket.create_connection(("127.0.0.1", p), timeout=5).close()
            out[p] = True
        except OSError as e:
            out[p] = repr(e)
    return out


def test_ready_only_after_listeners_and_watchdog(pki, tmp_path, echo):
    uri, cert = pki.servers["ec256"]
    g = Gateway(tmp_path, pki.token)
    # Many listeners and workers, so binding is not instant: READY=1 must still come after all of them.
    names = [f"l{i}" for i in range(12)]
    g.write_config([listener(pki, n, echo.port) for n in names], workers=4)
    ports = [g.port(n) for n in names]
    notify = FakeNotify(tmp_path / "notify.sock")
    notify.on_ready = lambda: ports_accepting(ports)
    env = dict(pki.token.env, NOTIFY_SOCKET=notify.path, WATCHDOG_USEC="400000")
    errlog = open(g.errlog, "ab")
    # WATCHDOG_PID must name the gateway itself: sh's pid is the gateway's after exec.
    proc = subprocess.Popen(["/bin/sh", "-c", 'WATCHDOG_PID=$$ exec "$0" "$@"', BIN, "run", "-c", str(g.config)],
                            stdout=errlog, stderr=errlog, env=env)
    try:
        i_ready, ready = notify.wait(lambda i, m: m.get("READY") == "1", "READY=1", proc)
        assert all(v is True for v in ready["_listeners_at_ready"].values()), ready["_listeners_at_ready"]
        assert ready.get("STATUS", "").startswith("ready: 12 listener(s), 4 worker(s)"), ready
        assert "ready:" in g.log()
        # and TLS works on each at once
        for p in ports[:3]:
            assert roundtrip(p, client_ctx(pki))[0] == b"hello hsmgate\n"
        # The watchdog: pings after READY (the first may come with it), and more than one.
        notify.wait(lambda i, m: m.get("WATCHDOG") == "1" and i > i_ready and
                    sum(1 for x in notify.messages[i_ready:] if x.get("WATCHDOG") == "1") >= 3, "WATCHDOG=1 x3", proc)
        assert "watchdog: every 200 ms" in g.log()
        # A reload: RELOADING=1, then READY=1 again.
        n = len(notify.messages)
        proc.send_signal(signal.SIGHUP)
        i_rel, _ = notify.wait(lambda i, m: i >= n and m.get("RELOADING") == "1", "RELOADING=1", proc)
        notify.wait(lambda i, m: i > i_rel and m.get("READY") == "1", "READY=1 after the reload", proc)
        proc.send_signal(signal.SIGTERM)
        notify.wait(lambda i, m: m.get("STOPPING") == "1", "STOPPING=1", proc)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        notify.close()
        errlog.close()
        print(g.log())
    # Only one READY=1 before the reload, none before the listeners.
    assert [m.get("READY") for m in notify.messages[:i_ready]].count("1") == 0


def test_watchdog_off_for_another_pid(pki, tmp_path, echo):
    """WATCHDOG_PID of another process (a child that inherited the variables): no watchdog here."""
    g = Gateway(tmp_path, pki.token)
    g.write_config([listener(pki, "pub", echo.port)])
    notify = FakeNotify(tmp_path / "notify.sock")
    g.extra_env = {"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "400000", "WATCHDOG_PID": "1"}
    try:
        g.start()
        notify.wait(lambda i, m: m.get("READY") == "1", "READY=1", g.proc)
        assert "watchdog:" not in g.log()
        assert not any(m.get("WATCHDOG") for m in notify.messages)
    finally:
        g.stop()
        notify.close()
        print(g.log())


# ---- privileges -------------------------------------------------------------------------------------

def proc_ids(pid):
    """{tid: (uids, gids, CapEff)} of every thread of pid."""
    out = {}
    for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
        st = dict(l.split(":", 1) for l in (task / "status").read_text().splitlines() if ":" in l)
        out[task.name] = (st["Uid"].split(), st["Gid"].split(), st["CapEff"].strip(), st["Groups"].split())
    return out


@as_root
def test_switch_to_user_after_binding(tmp_path, echo):
    """As root with user: nobody and a privileged port, the gateway binds, switches, and every thread -
    the workers included - runs as nobody without capabilities; it still serves, and still reloads."""
    nobody = pwd.getpwnam("nobody")
    nogroup = grp.getgrgid(nobody.pw_gid)
    # Out of pytest's 0700 tree, so that the user can reach its files (the token, the PIN, the config).
    base = pathlib.Path(tempfile.mkdtemp(prefix="hsmgate-user-", dir="/tmp"))
    g = None
    try:
        token = Token(base / "hsm")
        token.keygen("root", "ec:P-256")
        token.keygen("server", "ec:P-256")
        root = base / "root.pem"
        token.pki("root", "--key", token.uri("root"), "--subject", "/CN=user test root", "--out", str(root))
        cert = base / "server.pem"
        token.pki("server", "--ca-key", token.uri("root"), "--ca-cert", str(root), "--key", token.uri("server"),
                  "--subject", "/CN=localhost", "--san", "DNS:localhost", "--san", "IP:127.0.0.1", "--out", str(cert))
        g = Gateway(base / "gw", token)
        g.tmp.mkdir()
        low = next(p for p in range(600, 1000) if _free(p))   # a port only root (or CAP_NET_BIND_SERVICE) binds
        g.write_config([dict(name="low", port=low, type="tcp", auth="one-way", certificate=cert, key=token.uri("server"),
                             backends=[f"127.0.0.1:{echo.port}"]),
                        dict(name="high", type="tcp", auth="one-way", certificate=cert, key=token.uri("server"),
                             backends=[f"127.0.0.1:{echo.port}"])],
                       allow_root=None, user="nobody", workers=3, policy_store=f'"{base / "gw" / "policy.db"}"')
        for p in [base, *base.rglob("*")]:
            os.chown(p, nobody.pw_uid, nobody.pw_gid)
        g.start()
        assert f"running as user nobody (uid {nobody.pw_uid}, gid {nobody.pw_gid})" in g.log()
        ids = proc_ids(g.proc.pid)
        assert len(ids) >= 4, ids        # main + 3 workers (+ health, policy threads)
        for tid, (uids, gids, cap, groups) in ids.items():
            assert uids == [str(nobody.pw_uid)] * 4, (tid, uids)
            assert gids == [str(nobody.pw_gid)] * 4, (tid, gids)
            assert int(cap, 16) == 0, (tid, cap)
            assert "0" not in groups, (tid, groups)
        ctx = client_ctx(None, ca=root)
        for name in ("low", "high"):
            assert roundtrip(g.port(name), ctx)[0] == b"hello hsmgate\n"
        # A reload as nobody: the config and the certificate are re-read, the access log reopened.
        g.signal(signal.SIGHUP)
        g.wait_log("reloaded:")
        assert "cannot reopen access log" not in g.log()
        assert roundtrip(g.port("low"), ctx)[0] == b"hello hsmgate\n"
        g.wait_access(lambda r: r.get("listener") == "low")
        assert os.stat(g.access).st_uid == nobody.pw_uid
        assert g.stop() == 0
    finally:
        if g is not None:
            g.stop()
            print(g.log())
        shutil.rmtree(base, ignore_errors=True)
    assert nogroup.gr_gid == nobody.pw_gid


def _free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


@as_root
def test_root_refused_unless_allowed(pki, tmp_path, echo):
    g = Gateway(tmp_path, pki.token)
    g.write_config([listener(pki, "pub", echo.port)], allow_root=None)
    r = run([BIN, "run", "-c", str(g.config)], env=pki.token.env, check=False, timeout=60)
    err = r.stderr.decode()
    assert r.returncode == 1, err
    assert f"hsmgate: {g.config}: refusing to run as root: set user: (and group:)" in err, err
    assert "allow_root: true (hsmgate run --allow-root)" in err
    # nothing was bound
    with socket.socket() as s:
        s.bind(("127.0.0.1", g.port("pub")))
    # --allow-root is the same as allow_root: true
    errf = open(g.errlog, "ab")
    p = subprocess.Popen([BIN, "run", "-c", str(g.config), "--allow-root"], stdout=errf, stderr=errf, env=pki.token.env)
    g.proc = p
    try:
        g.wait_log("ready:")
        assert roundtrip(g.port("pub"), client_ctx(pki))[0] == b"hello hsmgate\n"
    finally:
        assert g.stop() == 0
        errf.close()
    # `check` is not `run`: it never refuses root
    assert run([BIN, "check", "-c", str(g.config)], env=pki.token.env).returncode == 0


def test_user_setting_errors(pki, tmp_path, echo):
    g = Gateway(tmp_path, pki.token)
    g.write_config([listener(pki, "pub", echo.port)], allow_root=None, user="no-such-user-hsmgate")
    r = run([BIN, "check", "-c", str(g.config)], env=pki.token.env, check=False)
    err = r.stderr.decode()
    line = next(i for i, l in enumerate(g.config.read_text().splitlines(), 1) if l.startswith("user:"))
    assert r.returncode == 1 and f"{g.config}:{line}: user \"no-such-user-hsmgate\" does not exist" in err, err
    g.write_config([listener(pki, "pub", echo.port)], allow_root=None, user="root")
    r = run([BIN, "check", "-c", str(g.config)], env=pki.token.env, check=False)
    assert r.returncode == 1 and "user root is root" in r.stderr.decode(), r.stderr
    g.write_config([listener(pki, "pub", echo.port)], allow_root=None, user="nobody", group="no-such-group-hsmgate")
    r = run([BIN, "check", "-c", str(g.config)], env=pki.token.env, check=False)
    assert r.returncode == 1 and "group \"no-such-group-hsmgate\" does not exist" in r.stderr.decode(), r.stderr


@as_root
def test_cannot_switch_when_not_root(pki, tmp_path, echo):
    """Started as an unprivileged user with another user: configured: a clear refusal, not a half-start."""
    base = pathlib.Path(tempfile.mkdtemp(prefix="hsmgate-nr-", dir="/tmp"))
    try:
        cfg = base / "c.yaml"
        uri, cert = pki.servers["ec256"]
        cfg.write_text(f"user: daemon\nlisteners:\n  - {{ name: a, bind: \"127.0.0.1:{free_port()}\", "
                       f"certificate: \"{cert}\", key: /nonexistent.pem, backends: [\"127.0.0.1:{echo.port}\"] }}\n")
        os.chmod(base, 0o755)
        os.chmod(cfg, 0o644)
        # The build tree may sit where nobody cannot go (a clone in a 0700 mktemp -d directory): nobody
        # runs a copy of the binary from here.
        binary = base / "hsmgate"
        shutil.copy(BIN, binary)
        os.chmod(binary, 0o755)
        nobody = pwd.getpwnam("nobody")

        def become_nobody():
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)

        r = subprocess.run([str(binary), "run", "-c", str(cfg)], capture_output=True, preexec_fn=become_nobody,
                           timeout=60)
        err = r.stderr.decode()
        assert r.returncode == 1 and f"{cfg}:1: user daemon: cannot switch to uid" in err and "not root" in err, err
    finally:
        shutil.rmtree(base, ignore_errors=True)


# ---- files that must stay private -------------------------------------------------------------------

@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_run_refuses_a_pin_file_others_can_read(pki, tmp_path, echo, mode):
    loose = tmp_path / "loose.pin"
    loose.write_text("1234\n")
    os.chmod(loose, mode)
    g = Gateway(tmp_path, pki.token)
    g.write_config([listener(pki, "pub", echo.port)], hsm=False)
    g.config.write_text(f"hsm: {{ module: {pki.token.module}, pin: \"file:{loose}\" }}\n" + g.config.read_text())
    r = run([BIN, "run", "-c", str(g.config)], env=pki.token.env, check=False, timeout=60)
    err = r.stderr.decode()
    assert r.returncode == 1, err
    assert f"pin source file:{loose}: readable by group or others (mode {mode:04o}); run chmod 600 on it" in err, err
    assert "1234" not in err


def test_run_refuses_a_tokens_file_others_can_read(pki, tmp_path, echo):
    tokens = tmp_path / "admin.tokens"
    tokens.write_text("")
    os.chmod(tokens, 0o644)
    g = Gateway(tmp_path, pki.token)
    g.write_config([listener(pki, "pub", echo.port)],
                   admin=f'{{ bind: "127.0.0.1:{free_port()}", tokens_file: "{tokens}" }}')
    r = run([BIN, "run", "-c", str(g.config)], env=pki.token.env, check=False, timeout=60)
    err = r.stderr.decode()
    assert r.returncode == 1 and f"{tokens}: readable by others (mode 0644); run chmod 600 (or 640) on it" in err, err


# ---- syslog -----------------------------------------------------------------------------------------

SYSLOG_NS = r'''
set -e
# In a private mount namespace: /dev/log becomes the test's socket, the rest of /dev stays as it was.
old="$1"; sock="$2"; shift 2
mount --make-rprivate /
mount --bind /dev "$old"
mount -t tmpfs -o mode=0755 tmpfs /dev
for n in null zero full random urandom tty; do
  [ -e "$old/$n" ] || continue
  touch "/dev/$n"; mount --bind "$old/$n" "/dev/$n"
done
touch /dev/log; mount --bind "$sock" /dev/log
exec "$@"
'''


@as_root
def test_log_to_syslog(pki, tmp_path, echo):
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is missing")
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"no private mount namespace here (unshare: {probe.stderr.decode().strip()}): "
                    "the syslog option's parsing is covered by tests/unit/test_config.c")
    sockpath = tmp_path / "log.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(str(sockpath))
    srv.settimeout(0.2)
    (tmp_path / "olddev").mkdir()
    g = Gateway(tmp_path, pki.token)
    g.write_config([listener(pki, "pub", echo.port)])
    g.config.write_text(g.config.read_text().replace("log: { level: debug,", "log: { level: debug, to: syslog, facility: local4,"))
    errf = open(g.errlog, "ab")
    p = subprocess.Popen(["unshare", "--mount", "/bin/sh", "-c", SYSLOG_NS, "sh", str(tmp_path / "olddev"), str(sockpath),
                          BIN, "run", "-c", str(g.config)], stdout=errf, stderr=errf, env=pki.token.env)
    got = []
    try:
        deadline = time.time() + 30
        while time.time() < deadline and not any("ready:" in m for m in got):
            try:
                got.append(srv.recv(8192).decode(errors="replace"))
            except socket.timeout:
                assert p.poll() is None, f"gateway exited: {g.log()}"
        ready = [m for m in got if "ready:" in m]
        assert ready, got
        # RFC 3164 framing from glibc: <PRI>, PRI = facility local4 (20) * 8 + info (6) = 166
        assert ready[0].startswith("<166>"), ready[0]
        assert f"hsmgate[{p.pid}]: ready: 1 listener(s)" in ready[0], ready[0]
        assert "ready:" not in g.log()    # not on stderr too
        assert roundtrip(g.port("pub"), client_ctx(pki))[0] == b"hello hsmgate\n"
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(30)
        finally:
            if p.poll() is None:
                p.kill()
            errf.close()
            srv.close()
            print(g.log())
