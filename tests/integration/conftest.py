"""Integration harness: a real SoftHSM token in a temporary directory, keys generated inside it and
certificates signed by it through `hsmgate pki`, the real gateway binary on 127.0.0.1, real clients.

Each gateway started by a test writes its error log and access log into the test's temporary
directory; when a test fails, pytest shows what the fixture printed (the logs) in its report.
"""
import json
import os
import pathlib
import shutil
import signal
import socket
import socketserver
import ssl
import subprocess
import threading
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("HSMGATE_BIN") or str(ROOT / "build" / "release" / "hsmgate")
SHIM = os.environ.get("HSMGATE_SHIM") or str(ROOT / "build" / "release" / "tests" / "libp11shim.so")
SOFTHSM = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "1234"
SO_PIN = "12345678"


def run(cmd, env=None, check=True, input=None, timeout=120):
    """Runs a command, returns CompletedProcess; on failure the error says what ran and what it printed."""
    r = subprocess.run(cmd, env=env, input=input, capture_output=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(
            f"command failed ({r.returncode}): {' '.join(map(str, cmd))}\n"
            f"stdout: {r.stdout.decode(errors='replace')}\nstderr: {r.stderr.decode(errors='replace')}")
    return r


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Token:
    """A SoftHSM2 token in its own directory, and the PKI made inside it."""

    def __init__(self, base: pathlib.Path, label="hsmgate"):
        self.dir = base
        self.label = label
        (base / "tokens").mkdir(parents=True, exist_ok=True)
        self.conf = base / "softhsm2.conf"
        self.conf.write_text(f"directories.tokendir = {base / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
        self.env = dict(os.environ, SOFTHSM2_CONF=str(self.conf))
        run(["softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", SO_PIN, "--pin", PIN],
            env=self.env)
        self.pin_file = base / "hsm.pin"
        self.pin_file.write_text(PIN + "\n")
        os.chmod(self.pin_file, 0o600)
        self.module = SOFTHSM

    def hsm_args(self):
        return ["--module", self.module, "--pin", f"file:{self.pin_file}"]

    def uri(self, label):
        return f"pkcs11:token={self.label};object={label};type=private"

    def keygen(self, label, spec):
        r = run([BIN, "pki", "keygen", *self.hsm_args(), "--token-uri", f"pkcs11:token={self.label}",
                 "--label", label, "--type", spec], env=self.env)
        return r.stdout.decode().strip().splitlines()[-1]

    def pki(self, *args):
        return run([BIN, "pki", *args, *self.hsm_args()], env=self.env)


class Pki:
    """Root CA and server keys in the token; client keys in files (they are the clients')."""

    def __init__(self, base: pathlib.Path):
        self.base = base
        self.token = Token(base / "hsm")
        t = self.token
        t.keygen("root", "ec:P-256")
        self.root = base / "root-ca.pem"
        t.pki("root", "--key", t.uri("root"), "--subject", "/CN=hsmgate test root/O=hsmgate tests", "--out", str(self.root))
        self.servers = {}
        self.server("ec256", "ec:P-256")
        self.server("rsa2048", "rsa:2048")
        self.client_cache = {}

    def server(self, name, spec, subject="/CN=localhost"):
        """A server key generated in the HSM and its certificate for localhost/127.0.0.1."""
        if name in self.servers:
            return self.servers[name]
        t = self.token
        label = f"server-{name}"
        t.keygen(label, spec)
        cert = self.base / f"{label}.pem"
        t.pki("server", "--ca-key", t.uri("root"), "--ca-cert", str(self.root), "--key", t.uri(label),
              "--subject", subject, "--san", "DNS:localhost", "--san", "IP:127.0.0.1", "--out", str(cert))
        self.servers[name] = (t.uri(label), cert)
        return self.servers[name]

    def client(self, name, *extra, subject=None):
        """A client key (file) and a certificate issued from its CSR by the HSM root."""
        if name in self.client_cache:
            return self.client_cache[name]
        key = self.base / f"client-{name}.key"
        csr = self.base / f"client-{name}.csr"
        crt = self.base / f"client-{name}.crt"
        run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", str(key), "-out", str(csr), "-subj", subject or f"/CN=client-{name}/O=hsmgate tests"])
        t = self.token
        t.pki("client", "--ca-key", t.uri("root"), "--ca-cert", str(self.root), "--csr", str(csr),
              "--out", str(crt), *extra)
        self.client_cache[name] = (crt, key)
        return crt, key

    def foreign_client(self):
        """A client certificate from a CA the gateway does not trust (made with openssl, keys in files)."""
        d = self.base / "foreign"
        if not d.exists():
            d.mkdir()
            run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"), "-subj", "/CN=foreign root", "-days", "30",
                 "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
            run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", str(d / "client.key"), "-out", str(d / "client.csr"), "-subj", "/CN=intruder"])
            ext = d / "ext.cnf"
            ext.write_text("extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n")
            run(["openssl", "x509", "-req", "-in", str(d / "client.csr"), "-CA", str(d / "ca.pem"), "-CAkey",
                 str(d / "ca.key"), "-CAcreateserial", "-days", "30", "-extfile", str(ext), "-out", str(d / "client.crt")])
        return d / "client.crt", d / "client.key"


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    if not pathlib.Path(BIN).exists():
        pytest.fail(f"{BIN} is missing: run `make` first")
    return Pki(tmp_path_factory.mktemp("pki"))


class EchoBackend:
    """A TCP backend that echoes what it receives, line by line or in chunks; counts connections."""

    def __init__(self):
        outer = self
        self.connections = 0

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                outer.connections += 1
                while True:
                    try:
                        data = self.request.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    self.request.sendall(data)

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def echo():
    b = EchoBackend()
    yield b
    b.close()


class Gateway:
    """The real hsmgate binary with a generated YAML config; logs in the test's directory."""

    def __init__(self, tmp: pathlib.Path, token: Token):
        self.tmp = tmp
        self.token = token
        self.proc = None
        self.config = tmp / "hsmgate.yaml"
        self.errlog = tmp / "gateway.log"
        self.access = tmp / "access.log"
        self.ports = {}
        self.extra_env = {}

    def write_config(self, listeners, hsm=True, **top):
        lines = []
        if hsm:
            lines.append(f"hsm: {{ module: {self.token.module}, pin: \"file:{self.token.pin_file}\" }}")
        lines.append(f"workers: {top.pop('workers', 2)}")
        lines.append(f"log: {{ level: debug, access_log: \"{self.access}\" }}")
        # The suite runs as root (CI): a gateway refuses to stay root unless told so. allow_root=None
        # leaves the setting out (tests of the refusal and of the switch to user:).
        allow_root = top.pop("allow_root", "true")
        if allow_root is not None and os.geteuid() == 0:
            lines.append(f"allow_root: {allow_root}")
        for k, v in top.items():
            lines.append(f"{k}: {v}")
        lines.append("listeners:")
        for l in listeners:
            l = dict(l)
            name = l.pop("name")
            port = self.ports.get(name) or l.pop("port", None) or free_port()
            l.pop("port", None)
            self.ports[name] = port
            lines.append(f"  - name: {name}")
            lines.append(f"    bind: 127.0.0.1:{port}")
            for k, v in l.items():
                if isinstance(v, list):
                    v = "[" + ", ".join(str(x) for x in v) + "]"
                elif isinstance(v, (str, pathlib.Path)) and k in ("key", "certificate", "client_ca"):
                    v = f"\"{v}\""
                lines.append(f"    {k}: {v}")
        self.config.write_text("\n".join(lines) + "\n")

    def start(self, wait=True):
        env = dict(self.token.env, **self.extra_env)
        self.errf = open(self.errlog, "ab")
        # HSMGATE_WRAPPER="valgrind --error-exitcode=99 --leak-check=full" runs the gateway under a tool
        wrapper = os.environ.get("HSMGATE_WRAPPER", "").split()
        self.proc = subprocess.Popen([*wrapper, BIN, "run", "-c", str(self.config)], stdout=self.errf, stderr=self.errf,
                                     env=env)
        if wait:
            self.wait_log("ready:", timeout=120 if os.environ.get("HSMGATE_WRAPPER") else 20)
        return self

    def wait_log(self, text, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if text in self.log():
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"gateway exited with {self.proc.returncode} before '{text}':\n{self.log()}")
            time.sleep(0.05)
        raise AssertionError(f"'{text}' not in the gateway log after {timeout}s:\n{self.log()}")

    def log(self):
        return self.errlog.read_text(errors="replace") if self.errlog.exists() else ""

    def access_lines(self):
        if not self.access.exists():
            return []
        text = self.access.read_text()
        # A line the gateway is still writing has no newline yet: it is read at the next look.
        complete = text[:text.rfind("\n") + 1]
        return [json.loads(l) for l in complete.splitlines() if l.strip()]

    def wait_access(self, pred, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for rec in self.access_lines():
                if pred(rec):
                    return rec
            time.sleep(0.05)
        raise AssertionError(f"no matching access log line in {timeout}s:\n" + "\n".join(
            json.dumps(r) for r in self.access_lines()))

    def port(self, name):
        return self.ports[name]

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=20):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("gateway did not stop within %ss of SIGTERM:\n%s" % (timeout, self.log()))
        return self.proc.returncode


@pytest.fixture
def gateway(tmp_path, pki):
    made = []

    def make(listeners, start=True, **top):
        g = Gateway(tmp_path / f"gw{len(made)}", pki.token)
        g.tmp.mkdir()
        g.write_config(listeners, **top)
        made.append(g)
        if start:
            g.start()
        return g

    yield make
    failed = []
    for g in made:
        rc = g.stop()
        print(f"---- gateway log ({g.errlog}) ----\n{g.log()}")
        if rc not in (0, None, -signal.SIGKILL) and g.proc is not None and g.proc.returncode != 0 and not getattr(g, "expect_failure", False):
            failed.append(f"gateway exited with status {rc}")
    assert not failed, failed


def listener(pki, name, backend_port, auth="one-way", server="ec256", **kw):
    uri, cert = pki.servers[server]
    d = dict(name=name, type="tcp", auth=auth, certificate=cert, key=uri, backends=[f"127.0.0.1:{backend_port}"])
    if auth != "one-way":
        d["client_ca"] = pki.root
    d.update(kw)
    return d


def client_ctx(pki, cert=None, version=None, ca=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(ca or pki.root))
    ctx.check_hostname = True
    if cert is not None:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    if version == "1.2":
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    elif version == "1.3":
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    return ctx


def roundtrip(port, ctx, payload=b"hello hsmgate\n", timeout=10):
    """Connects, sends payload, returns what came back (the echo) and the TLS details."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(payload)
            got = b""
            while len(got) < len(payload):
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
            return got, s.version(), s.cipher()


def refused(port, ctx, timeout=10):
    """Asserts the gateway refuses: the handshake or the first read fails. Returns the error text."""
    try:
        got, _, _ = roundtrip(port, ctx, timeout=timeout)
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError, ConnectionAbortedError) as e:
        return str(e)
    assert got == b"", f"expected a refusal, got {got!r}"
    return "closed"
