"""The systems the benchmarks compare: hsmgate (key in SoftHSM or in a PEM file), nginx (stream and http
modules), HAProxy and stunnel from Debian's packages. Each runs as our own foreground process on
127.0.0.1 with a config generated into its own temporary directory, the same server certificate and
key (a PEM file for the peers), the same client CA (the bench PKI's root), client certificates
required, TLS 1.2 and 1.3, 2 workers or threads (stunnel: one thread per connection, its only model).

Each server offers two ports: `tcp` (TLS, then bytes to the echo backend) and `https` (TLS + HTTP/1.1 to
the keep-alive HTTP backend; stunnel is a TCP tunnel there and nginx uses its http module). A server
knows its processes (pids(): the main one and its live descendants) for CPU and memory accounting, and
is stopped by its PID.
"""
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import time

import cpu  # tests/bench/cpu.py: descendants()
from conftest import Gateway, free_port

WORKERS = 2
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
NGINX_STREAM = "/usr/lib/nginx/modules/ngx_stream_module.so"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
STUNNEL = shutil.which("stunnel4") or shutil.which("stunnel") or "/usr/bin/stunnel4"
# The hard limit on open files here is 20,000 and cannot be raised: a proxy holds 2 descriptors per
# connection, so a single-process server (hsmgate, HAProxy, stunnel) tops out just under 10,000.
MAXCONN = 9900


def versions():
    """The peers' versions, as each prints it."""
    out = {}
    for name, cmd in (("nginx", [NGINX, "-v"]), ("haproxy", [HAPROXY, "-v"]), ("stunnel", [STUNNEL, "-version"]),
                      ("openssl", ["openssl", "version"])):
        try:
            r = subprocess.run(cmd, capture_output=True, timeout=10)
            text = (r.stdout + r.stderr).decode(errors="replace").strip().splitlines()
            out[name] = next((l.strip() for l in text if l.lower().lstrip().startswith(("nginx", "haproxy", "stunnel",
                                                                                       "openssl"))), text[0] if text else "")
        except (OSError, subprocess.TimeoutExpired) as e:
            out[name] = f"unavailable: {e}"
    return out


def available(system):
    exe = {"nginx": NGINX, "HAProxy": HAPROXY, "stunnel": STUNNEL}.get(system)
    return exe is None or os.access(exe, os.X_OK)


def wait_port(port, proc, log, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited ({proc.returncode}) before listening on {port}:\n{log()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port} after {timeout} s:\n{log()[-3000:]}")


class Server:
    """A running peer: name, ports {'tcp': p, 'https': p}, proc; pids(), rss_kb(), stop(), log()."""

    def __init__(self, name, tmp):
        self.name, self.tmp, self.proc, self.ports = name, tmp, None, {}
        self.logfile = tmp / "server.log"

    def pids(self):
        return cpu.descendants([self.proc.pid])

    def rss_kb(self):
        total = 0
        for pid in self.pids():
            try:
                for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total

    def log(self):
        return self.logfile.read_text(errors="replace") if self.logfile.exists() else ""

    def start(self, cmd, env=None):
        self.errf = open(self.logfile, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.errf, stderr=self.errf, env=env, cwd=str(self.tmp))
        for port in self.ports.values():
            wait_port(port, self.proc, self.log)
        return self

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)   # nginx: fast shutdown; HAProxy -db and stunnel: exit
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Hsmgate(Server):
    def __init__(self, name, tmp, token, cert, key, pki, echo_port, http_port, **top):
        super().__init__(name, tmp)
        self.g = Gateway(tmp, token)
        common = dict(auth="two-way", certificate=cert, key=key, client_ca=pki.root)
        self.g.write_config([dict(name="tcp", type="tcp", backends=[f"127.0.0.1:{echo_port}"], **common),
                             dict(name="https", type="https", backends=[f"127.0.0.1:{http_port}"], **common)],
                            workers=WORKERS, max_connections=MAXCONN, **top)
        # no access log line per connection: not what is measured (the peers log none either)
        self.g.config.write_text(self.g.config.read_text().replace(f'access_log: "{self.g.access}"', "access_log: off")
                                 .replace("level: debug", "level: info"))
        self.ports = dict(self.g.ports)
        self.logfile = self.g.errlog

    def start(self):
        self.g.start()
        self.proc = self.g.proc
        return self

    def stop(self):
        self.g.stop()


def _tls_common_nginx(cert, key, root, zone):
    return (f"ssl_certificate {cert}; ssl_certificate_key {key}; ssl_client_certificate {root}; "
            f"ssl_verify_client on; ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:{zone}:10m; "
            "ssl_session_tickets on; ssl_session_timeout 5m;")


class Nginx(Server):
    def __init__(self, name, tmp, cert, key, root, echo_port, http_port):
        super().__init__(name, tmp)
        self.ports = {"tcp": free_port(), "https": free_port()}
        conf = f"""load_module {NGINX_STREAM};
user root;
worker_processes {WORKERS};
worker_rlimit_nofile 20000;
pid {tmp}/nginx.pid;
error_log {tmp}/server.log warn;
events {{ worker_connections 12000; }}
stream {{
  server {{ listen 127.0.0.1:{self.ports['tcp']} ssl; {_tls_common_nginx(cert, key, root, 'stream')} proxy_pass 127.0.0.1:{echo_port}; }}
}}
http {{
  access_log off;
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy; fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  keepalive_requests 1000000; keepalive_timeout 300s;
  upstream backend {{ server 127.0.0.1:{http_port}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{self.ports['https']} ssl; {_tls_common_nginx(cert, key, root, 'http')}
    location / {{ proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }}
  }}
}}
"""
        self.conf = tmp / "nginx.conf"
        self.conf.write_text(conf)

    def start(self):
        return super().start([NGINX, "-p", str(self.tmp), "-e", str(self.logfile), "-c", str(self.conf),
                              "-g", "daemon off;"])


class Haproxy(Server):
    def __init__(self, name, tmp, cert, key, root, echo_port, http_port):
        super().__init__(name, tmp)
        self.ports = {"tcp": free_port(), "https": free_port()}
        pem = tmp / "server-combined.pem"
        pem.write_text(pathlib.Path(cert).read_text() + pathlib.Path(key).read_text())
        bind = f"ssl crt {pem} ca-file {root} verify required"
        conf = f"""global
  nbthread {WORKERS}
  maxconn {MAXCONN}
  ssl-default-bind-options ssl-min-ver TLSv1.2
  ssl-server-verify none
defaults
  timeout connect 5s
  timeout client 5m
  timeout server 5m
  timeout http-keep-alive 5m
frontend tcp
  mode tcp
  bind 127.0.0.1:{self.ports['tcp']} {bind}
  default_backend echo
backend echo
  mode tcp
  server s1 127.0.0.1:{echo_port}
frontend https
  mode http
  option http-keep-alive
  bind 127.0.0.1:{self.ports['https']} {bind}
  default_backend web
backend web
  mode http
  http-reuse always
  server s1 127.0.0.1:{http_port}
"""
        self.conf = tmp / "haproxy.cfg"
        self.conf.write_text(conf)

    def start(self):
        return super().start([HAPROXY, "-db", "-f", str(self.conf)])


class Stunnel(Server):
    def __init__(self, name, tmp, cert, key, root, echo_port, http_port):
        super().__init__(name, tmp)
        self.ports = {"tcp": free_port(), "https": free_port()}
        svc = (f"cert = {cert}\nkey = {key}\nCAfile = {root}\nverifyChain = yes\nrequireCert = yes\n"
               "sslVersionMin = TLSv1.2\nsslVersionMax = TLSv1.3\n")
        conf = (f"foreground = yes\npid = {tmp}/stunnel.pid\noutput = {self.logfile}\nsyslog = no\ndebug = 4\n"
                f"[tcp]\naccept = 127.0.0.1:{self.ports['tcp']}\nconnect = 127.0.0.1:{echo_port}\n{svc}"
                f"[https]\naccept = 127.0.0.1:{self.ports['https']}\nconnect = 127.0.0.1:{http_port}\n{svc}")
        self.conf = tmp / "stunnel.conf"
        self.conf.write_text(conf)

    def start(self):
        return super().start([STUNNEL, str(self.conf)])


def make(system, tmp, ctx, keytype, **top):
    """A server of `system` with the `keytype` server identity ("ec256" or "rsa2048"), not started."""
    pki, echo_port, http_port = ctx["pki"], ctx["echo_port"], ctx["http_port"]
    tmp.mkdir(parents=True)
    fkey, fcert = ctx["file_servers"][keytype]
    if system == "hsmgate (key in SoftHSM)":
        uri, cert = pki.servers[keytype]
        return Hsmgate(system, tmp, pki.token, cert, uri, pki, echo_port, http_port, **top)
    if system == "hsmgate (key in PEM file)":
        return Hsmgate(system, tmp, pki.token, fcert, fkey, pki, echo_port, http_port, **top)
    cls = {"nginx": Nginx, "HAProxy": Haproxy, "stunnel": Stunnel}[system]
    return cls(system, tmp, fcert, fkey, pki.root, echo_port, http_port)
