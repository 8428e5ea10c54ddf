"""Test backends for pools, health checks and the PROXY protocol v2.

- parse_pp2(): a strict PROXY protocol v2 parser written from haproxy.org doc/proxy-protocol.txt 2.2
  (independent of the gateway's encoder): any deviation raises Pp2Error.
- Pp2Backend: reads and parses the header that must come first, replies with the parsed fields as one
  JSON line, then echoes.
- TaggedBackend: a data connection gets "<port>:" before the echo of its first bytes, so a client knows
  which backend served it; "GET ..." requests are health checks, answered with a switchable status.
  It can die (listening socket and open connections closed) and come back on the same port.
"""
import base64
import json
import socket
import socketserver
import threading
import time

SIG = b"\r\n\r\n\x00\r\nQUIT\n"
FAMILIES = {0x00: "UNSPEC", 0x11: "TCP4", 0x12: "UDP4", 0x21: "TCP6", 0x22: "UDP6", 0x31: "UNIX_STREAM",
            0x32: "UNIX_DGRAM"}
ADDR_LEN = {0x11: 12, 0x12: 12, 0x21: 36, 0x22: 36, 0x31: 216, 0x32: 216, 0x00: 0}
SSL_SUBTYPES = {0x21: "version", 0x22: "cn", 0x23: "cipher", 0x24: "sig_alg", 0x25: "key_alg"}
KNOWN_TLVS = {0x01, 0x02, 0x03, 0x04, 0x05, 0x20, 0x30}


class Pp2Error(Exception):
    pass


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise Pp2Error(f"connection closed after {len(buf)} of {n} header bytes")
        buf += chunk
    return buf


def _tlvs(data, what):
    """Splits data into (type, value) pairs; a TLV that overruns, or a trailing fragment, is an error."""
    out, off = [], 0
    while off < len(data):
        if off + 3 > len(data):
            raise Pp2Error(f"{what}: {len(data) - off} trailing byte(s), not a TLV")
        t, ln = data[off], int.from_bytes(data[off + 1:off + 3], "big")
        if off + 3 + ln > len(data):
            raise Pp2Error(f"{what}: TLV 0x{t:02x} of length {ln} overruns by {off + 3 + ln - len(data)}")
        out.append((t, data[off + 3:off + 3 + ln]))
        off += 3 + ln
    return out


def _text(v, what):
    try:
        s = v.decode("utf-8", errors="strict")
    except UnicodeDecodeError as e:
        raise Pp2Error(f"{what}: not UTF-8: {e}")
    if not s or "\x00" in s:
        raise Pp2Error(f"{what}: empty or with a NUL: {s!r}")
    return s


def parse_pp2(head16, body):
    """Parses a v2 header: head16 is the fixed 16 bytes, body the length they announce."""
    if len(head16) != 16 or head16[:12] != SIG:
        raise Pp2Error(f"bad signature: {head16[:12]!r}")
    ver, cmd = head16[12] >> 4, head16[12] & 0x0F
    if ver != 2:
        raise Pp2Error(f"version {ver}, not 2")
    if cmd not in (0, 1):
        raise Pp2Error(f"command {cmd} is neither LOCAL nor PROXY")
    fam = head16[13]
    if fam not in FAMILIES:
        raise Pp2Error(f"unknown family/transport byte 0x{fam:02x}")
    ln = int.from_bytes(head16[14:16], "big")
    if len(body) != ln:
        raise Pp2Error(f"length says {ln}, got {len(body)}")
    alen = ADDR_LEN[fam]
    if ln < alen:
        raise Pp2Error(f"length {ln} shorter than the {FAMILIES[fam]} address block ({alen})")
    out = {"version": ver, "command": "PROXY" if cmd == 1 else "LOCAL", "family": FAMILIES[fam],
           "header_len": 16 + ln}
    a = body[:alen]
    if fam in (0x11, 0x12):
        out["src"] = [socket.inet_ntop(socket.AF_INET, a[0:4]), int.from_bytes(a[8:10], "big")]
        out["dst"] = [socket.inet_ntop(socket.AF_INET, a[4:8]), int.from_bytes(a[10:12], "big")]
    elif fam in (0x21, 0x22):
        out["src"] = [socket.inet_ntop(socket.AF_INET6, a[0:16]), int.from_bytes(a[32:34], "big")]
        out["dst"] = [socket.inet_ntop(socket.AF_INET6, a[16:32]), int.from_bytes(a[34:36], "big")]
    out["tlv_types"], out["unknown_tlvs"] = [], []
    seen = set()
    for t, v in _tlvs(body[alen:], "TLVs"):
        if t in seen:
            raise Pp2Error(f"TLV 0x{t:02x} twice")
        seen.add(t)
        out["tlv_types"].append(t)
        if t == 0x20:
            if len(v) < 5:
                raise Pp2Error(f"PP2_TYPE_SSL of {len(v)} bytes, less than client + verify")
            ssl = {"client": v[0], "verify": int.from_bytes(v[1:5], "big"), "subtypes": []}
            if v[0] & ~0x07:
                raise Pp2Error(f"PP2_TYPE_SSL client has undefined bits: 0x{v[0]:02x}")
            for st, sv in _tlvs(v[5:], "PP2_TYPE_SSL sub-TLVs"):
                if st not in SSL_SUBTYPES:
                    raise Pp2Error(f"unknown PP2_TYPE_SSL sub-TLV 0x{st:02x}")
                name = SSL_SUBTYPES[st]
                if name in ssl:
                    raise Pp2Error(f"sub-TLV 0x{st:02x} twice")
                ssl[name] = _text(sv, name)
                ssl["subtypes"].append(st)
            out["ssl"] = ssl
        elif t == 0xE0:
            out["cert_der_b64"] = base64.b64encode(v).decode()
        elif t not in KNOWN_TLVS:
            out["unknown_tlvs"].append(t)
    return out


def read_pp2(sock):
    head = recv_exact(sock, 16)
    if head[:12] != SIG:
        raise Pp2Error(f"the first bytes are not a PROXY v2 signature: {head!r}")
    ln = int.from_bytes(head[14:16], "big")
    return parse_pp2(head, recv_exact(sock, ln))


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


class Pp2Backend:
    """Parses the PROXY v2 header, answers one JSON line (the fields, or {"error": ...}), then echoes."""

    def __init__(self):
        outer = self
        self.results = []

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                self.request.settimeout(10)
                try:
                    parsed = read_pp2(self.request)
                except (Pp2Error, OSError) as e:
                    parsed = {"error": str(e)}
                outer.results.append(parsed)
                try:
                    self.request.sendall(json.dumps(parsed).encode() + b"\n")
                    if "error" in parsed:
                        return
                    while True:
                        data = self.request.recv(65536)
                        if not data:
                            return
                        self.request.sendall(data)
                except OSError:
                    return

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class TaggedBackend:
    """Echo backend that names itself ("<port>:" before the first echoed bytes) and answers health
    checks ("GET ..." -> HTTP status `self.status`). Counts data connections and health requests."""

    def __init__(self, port=0):
        self.status = 200
        self.data_connections = 0
        self.health_requests = []
        self.open = set()
        self.lock = threading.Lock()
        self.server = None
        self.port = port
        self.start()

    def start(self):
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                s = self.request
                with outer.lock:
                    outer.open.add(s)
                try:
                    self.serve(s)
                except OSError:
                    pass
                finally:
                    with outer.lock:
                        outer.open.discard(s)

            def serve(self, s):
                first = s.recv(65536)
                if not first:
                    return  # a TCP health check: connect, close
                if first.startswith(b"GET "):
                    while b"\r\n\r\n" not in first:
                        more = s.recv(65536)
                        if not more:
                            break
                        first += more
                    outer.health_requests.append(first.decode(errors="replace"))
                    st = outer.status
                    s.sendall(f"HTTP/1.1 {st} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
                    return
                with outer.lock:
                    outer.data_connections += 1
                s.sendall(f"{outer.port}:".encode() + first)
                while True:
                    data = s.recv(65536)
                    if not data:
                        return
                    s.sendall(data)

        self.server = _Server(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def kill(self):
        """Dies: refuses new connections and resets the open ones."""
        self.server.shutdown()
        self.server.server_close()
        with self.lock:
            for s in list(self.open):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self.open.clear()

    def revive(self):
        self.start()

    def close(self):
        self.kill()


def ask(port, ctx, payload=b"who\n", timeout=10):
    """One connection through the gateway: sends payload, returns (backend port, echoed payload)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(payload)
            got = b""
            while b":" not in got or len(got.split(b":", 1)[1]) < len(payload):
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
    tag, sep, rest = got.partition(b":")
    if not sep or not tag.isdigit():
        raise AssertionError(f"no tagged reply through port {port}: {got!r}")
    return int(tag), rest


def wait_for(pred, timeout=10, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"{what} not met within {timeout}s")
