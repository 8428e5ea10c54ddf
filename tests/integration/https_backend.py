"""A test backend for https listeners: an HTTP/1.1 server on 127.0.0.1 that records exactly what reached
it (raw bytes per connection, and each request parsed strictly) and answers with a JSON report of the
request, so a test can check what the gateway forwarded.

Paths:
  /big/N            a response of N bytes (Content-Length), written in 64 KiB pieces
  /chunked-big/N    the same, chunked
  /status/CODE      an empty response with that status
  /close            answers with Connection: close, then closes
anything else       200, application/json: {"method", "target", "version", "headers": [[name, value], ...],
                    "framing": "chunked" | "length" | "none", "body_len", "body_sha256"}

mode="silent": accepts, reads, never answers (a backend that hangs).
Run alone: python3 https_backend.py PORT (echo mode, for poking at it by hand).
"""
import hashlib
import json
import socket
import socketserver
import sys
import threading


class BadRequest(Exception):
    pass


def _read_until(sock, buf, sep, limit=1 << 20):
    while sep not in buf:
        if len(buf) > limit:
            raise BadRequest("head too large")
        data = sock.recv(65536)
        if not data:
            raise EOFError
        buf += data
    i = buf.index(sep) + len(sep)
    return buf[:i], buf[i:]


def _read_exact(sock, buf, n, sink):
    """Reads n bytes of body, feeding them to sink; returns what is left over."""
    while n > 0:
        if not buf:
            buf = sock.recv(65536)
            if not buf:
                raise EOFError
        take = buf[:n]
        sink(take)
        n -= len(take)
        buf = buf[len(take):]
    return buf


def _parse_head(head):
    lines = head[:-4].split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        raise BadRequest(f"request line {lines[0]!r}")
    headers = []
    for line in lines[1:]:
        if b":" not in line or line[:1] in (b" ", b"\t") or b"\n" in line or b"\r" in line:
            raise BadRequest(f"header line {line!r}")
        name, value = line.split(b":", 1)
        if name != name.strip() or not name:
            raise BadRequest(f"header name {name!r}")
        headers.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
    return parts[0].decode(), parts[1].decode("latin-1"), parts[2].decode(), headers


class _Recording:
    """The connection's socket, keeping a copy of every byte received."""

    def __init__(self, sock, raw, lock):
        self.sock, self.raw, self.lock = sock, raw, lock

    def recv(self, n):
        data = self.sock.recv(n)
        with self.lock:
            self.raw.extend(data)
        return data

    def sendall(self, data):
        self.sock.sendall(data)

    def shutdown(self, how):
        self.sock.shutdown(how)


def _get(headers, name):
    return [v for n, v in headers if n.lower() == name.lower()]


class HttpBackend:
    def __init__(self, mode="echo", port=0):
        outer = self
        self.mode = mode
        self.lock = threading.Lock()
        self.requests = []      # every request parsed, in arrival order
        self.raw = []           # bytearray per connection: everything received
        self.errors = []        # what the strict parser refused
        self.connections = 0

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                with outer.lock:
                    outer.connections += 1
                    raw = bytearray()
                    outer.raw.append(raw)
                sock = self.request
                if outer.mode == "silent":
                    while True:
                        try:
                            data = sock.recv(65536)
                        except OSError:
                            return
                        if not data:
                            return
                        with outer.lock:
                            raw += data
                sock = _Recording(sock, raw, outer.lock)
                buf = b""
                try:
                    while True:
                        if not buf:
                            first = sock.recv(65536)
                            if not first:
                                return
                            buf = first
                        head, buf = _read_until(sock, buf, b"\r\n\r\n")
                        buf = outer._one(sock, head, buf)
                        if buf is None:
                            return
                except (EOFError, ConnectionError, OSError):
                    return
                except BadRequest as e:
                    with outer.lock:
                        outer.errors.append(str(e))
                    return

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = Server(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _one(self, sock, head, buf):
        method, target, version, headers = _parse_head(head)
        te, cl = _get(headers, "Transfer-Encoding"), _get(headers, "Content-Length")
        h = hashlib.sha256()
        size = [0]

        def sink(b):
            h.update(b)
            size[0] += len(b)
        if te and cl:
            raise BadRequest("both Transfer-Encoding and Content-Length")
        if any(v.lower() == "100-continue" for v in _get(headers, "Expect")):
            sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        if te:
            if te != ["chunked"]:
                raise BadRequest(f"Transfer-Encoding {te!r}")
            framing = "chunked"
            while True:
                line, buf = _read_until(sock, buf, b"\r\n")
                size_text = line[:-2].split(b";", 1)[0]
                n = int(size_text, 16)
                if n == 0:
                    trailer, buf = _read_until(sock, buf, b"\r\n")
                    if trailer != b"\r\n":
                        raise BadRequest(f"trailer {trailer!r}")
                    break
                buf = _read_exact(sock, buf, n, sink)
                crlf, buf = _read_until(sock, buf, b"\r\n")
                if crlf != b"\r\n":
                    raise BadRequest("no CRLF after chunk data")
        elif cl:
            if len(cl) != 1 or not cl[0].isdigit():
                raise BadRequest(f"Content-Length {cl!r}")
            framing = "length"
            buf = _read_exact(sock, buf, int(cl[0]), sink)
        else:
            framing = "none"
        info = {"method": method, "target": target, "version": version, "headers": headers,
                "framing": framing, "body_len": size[0], "body_sha256": h.hexdigest()}
        with self.lock:
            self.requests.append(info)
        close = target == "/close" or any(v.lower() == "close" for v in _get(headers, "Connection"))
        extra = b"Connection: close\r\n" if close else b""
        if target.startswith("/status/"):
            code = int(target.split("/")[2])
            sock.sendall(b"HTTP/1.1 %d X\r\nContent-Length: 0\r\n%s\r\n" % (code, extra))
        elif target.startswith("/big/") or target.startswith("/chunked-big/"):
            n = int(target.split("/")[2])
            chunked = target.startswith("/chunked")
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n" +
                         (b"Transfer-Encoding: chunked\r\n" if chunked else b"Content-Length: %d\r\n" % n) +
                         extra + b"\r\n")
            if method != "HEAD":
                piece = bytes(range(256)) * 256
                left = n
                while left > 0:
                    part = piece[:min(left, len(piece))]
                    sock.sendall(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
                    left -= len(part)
                if chunked:
                    sock.sendall(b"0\r\n\r\n")
        else:
            body = json.dumps(info).encode()
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n"
                         % (len(body), extra) + (b"" if method == "HEAD" else body))
        if close:
            sock.shutdown(socket.SHUT_WR)
            return None
        return buf

    def raw_bytes(self):
        with self.lock:
            return b"".join(bytes(r) for r in self.raw)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":
    b = HttpBackend(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    print(f"listening on 127.0.0.1:{b.port}", flush=True)
    threading.Event().wait()
