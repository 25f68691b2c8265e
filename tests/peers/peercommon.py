"""Shared machinery of the protocol peers: HTTP(S) server, stats, fault injection, state file.

Each peer (kms_peer.py, vault_peer.py, kube_peer.py) supplies an App with
  operation(req) -> str        name used for stats and fault matching
  handle(req, op) -> Response  the protocol itself
  fault_response(fault, op)    an injected failure in the protocol's own error shape
  control(body) -> dict        peer-specific controls (disable a key, ...)
  to_state() / from_state(d)   persistence for --state
Everything under /__peer/ is the peer's private control plane and is never counted.
"""

import argparse
import collections
import hashlib
import hmac
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass
class Request:
    method: str
    raw_path: str          # path as sent, still percent-encoded
    query: str             # raw query string, '' when absent
    headers: object        # email.message.Message, case-insensitive
    body: bytes
    client_cert: dict = None
    summary: dict = field(default_factory=dict)   # what the log records about the request


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict = field(default_factory=dict)


def json_response(status, obj, content_type="application/json", headers=None):
    return Response(status, json.dumps(obj).encode(), content_type, headers or {})


# --- an honest stand-in for AEAD with the standard library only -------------------------
# Keystream = HMAC-SHA256(enc_key, nonce || counter); tag = HMAC-SHA256(mac_key, everything).
# Real providers' blobs are opaque, so clients must not depend on this layout.

NONCE_LEN = 16
TAG_LEN = 32


def _subkeys(material):
    return (hmac.new(material, b"peer-enc", hashlib.sha256).digest(),
            hmac.new(material, b"peer-mac", hashlib.sha256).digest())


def _keystream(key, nonce, length):
    out = bytearray()
    counter = 0
    while len(out) < length:
        out += hmac.new(key, nonce + counter.to_bytes(8, "big"), hashlib.sha256).digest()
        counter += 1
    return bytes(out[:length])


def _tag(mac_key, header, aad, nonce, ct):
    msg = (len(header).to_bytes(4, "big") + header + len(aad).to_bytes(4, "big") + aad + nonce + ct)
    return hmac.new(mac_key, msg, hashlib.sha256).digest()


def seal(material, header, aad, plaintext):
    """Returns nonce || ciphertext || tag; header and aad are authenticated, not included."""
    enc_key, mac_key = _subkeys(material)
    nonce = secrets.token_bytes(NONCE_LEN)
    ct = bytes(a ^ b for a, b in zip(plaintext, _keystream(enc_key, nonce, len(plaintext))))
    return nonce + ct + _tag(mac_key, header, aad, nonce, ct)


def unseal(material, header, aad, data):
    """Inverse of seal; raises ValueError when the data was not sealed with these inputs."""
    if len(data) < NONCE_LEN + TAG_LEN:
        raise ValueError("too short")
    enc_key, mac_key = _subkeys(material)
    nonce, ct, tag = data[:NONCE_LEN], data[NONCE_LEN:-TAG_LEN], data[-TAG_LEN:]
    if not hmac.compare_digest(tag, _tag(mac_key, header, aad, nonce, ct)):
        raise ValueError("authentication failed")
    return bytes(a ^ b for a, b in zip(ct, _keystream(enc_key, nonce, len(ct))))


# --- stats, faults, log ------------------------------------------------------------------

class Observer:
    """Counts requests per operation and hands out injected faults; all under one lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.ops = collections.Counter()
        self.statuses = collections.Counter()
        self.total = 0
        self.injected = 0
        self.faults = []
        self.log = collections.deque(maxlen=500)

    def add_fault(self, spec):
        fault = dict(spec)
        fault.setdefault("times", None)   # None = until /__peer/reset or /__peer/clear
        fault.setdefault("after", 0)      # let this many matching requests through first
        self.faults.append(fault)

    def take_fault(self, op):
        for fault in self.faults:
            if fault.get("op") not in (None, op):
                continue
            if fault["after"] > 0:
                fault["after"] -= 1
                return None
            if fault["times"] is not None:
                if fault["times"] <= 0:
                    continue
                fault["times"] -= 1
            return fault
        return None

    def record(self, req, op, status, injected):
        self.total += 1
        self.ops[op] += 1
        self.statuses[str(status)] += 1
        if injected:
            self.injected += 1
        self.log.append({"op": op, "method": req.method, "path": req.raw_path, "status": status,
                         "injected": injected, "time": time.time(), "user_agent": req.headers.get("User-Agent"),
                         **req.summary})

    def stats(self):
        return {"total": self.total, "ops": dict(self.ops), "statuses": dict(self.statuses),
                "injected_failures": self.injected,
                "pending_faults": [f for f in self.faults if f["times"] is None or f["times"] > 0]}


# --- HTTP plumbing -----------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive, as real servers do; every reply has a length

    def setup(self):
        # Headers and body go out in separate writes; without this, Nagle + delayed ACK add 40 ms.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            try:
                self.request.do_handshake()
            except (ssl.SSLError, OSError):
                self.request.close()
                raise
            self.request.settimeout(None)
        super().setup()

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("%s %s\n" % (self.server.app.name, fmt % args))

    def do_GET(self): self._dispatch()
    def do_POST(self): self._dispatch()
    def do_PUT(self): self._dispatch()
    def do_PATCH(self): self._dispatch()
    def do_DELETE(self): self._dispatch()
    def do_HEAD(self): self._dispatch()
    def do_LIST(self): self._dispatch()   # Vault's LIST verb

    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(body)
                body += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self):
        parts = urlsplit(self.path)
        cert = None
        if isinstance(self.request, ssl.SSLSocket):
            cert = self.request.getpeercert() or None
        req = Request(self.command, parts.path, parts.query, self.headers, self._read_body(), cert)
        if req.raw_path.startswith("/__peer/"):
            self._send(self.server.control(req))
            return
        self._send(self.server.serve(req))

    def _send(self, resp):
        if resp is None:   # injected connection drop
            self.close_connection = True
            return
        self.send_response(resp.status)
        if resp.body or resp.status not in (204, 304):
            self.send_header("Content-Type", resp.content_type)
        for name, value in resp.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(resp.body)


class PeerServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, app, port, state_path, verbose):
        super().__init__(("127.0.0.1", port), Handler)
        self.app = app
        self.state_path = state_path
        self.verbose = verbose
        self.observer = Observer()
        self.app_lock = threading.RLock()   # the peers' data is tiny: serialise all handling

    def serve(self, req):
        op = self.app.operation(req)
        with self.observer.lock:
            fault = self.observer.take_fault(op)
        if fault and fault.get("delay_ms"):
            time.sleep(fault["delay_ms"] / 1000.0)
        if fault and fault.get("drop"):
            with self.observer.lock:
                self.observer.record(req, op, 0, True)
            return None
        if fault and fault.get("status"):
            resp = self.app.fault_response(fault, op)
            if fault.get("retry_after") is not None:
                resp.headers["Retry-After"] = str(fault["retry_after"])
            with self.observer.lock:
                self.observer.record(req, op, resp.status, True)
            return resp
        with self.app_lock:
            try:
                resp = self.app.handle(req, op)
            except Exception as exc:   # a peer bug must show up as a 500, not a hung client
                import traceback
                traceback.print_exc()
                resp = self.app.fault_response({"status": 500, "message": "peer bug: %r" % exc}, op)
            if self.app.dirty:
                self.save_state()
                self.app.dirty = False
        with self.observer.lock:
            self.observer.record(req, op, resp.status, False)
        return resp

    def control(self, req):
        action = req.raw_path[len("/__peer/"):].strip("/")
        try:
            body = json.loads(req.body or b"{}")
        except ValueError:
            return json_response(400, {"error": "control body must be JSON"})
        obs = self.observer
        if action == "stats":
            with obs.lock:
                return json_response(200, obs.stats())
        if action == "log":
            with obs.lock:
                return json_response(200, list(obs.log))
        if action == "reset":
            with obs.lock:
                obs.reset()
            return json_response(200, {"ok": True})
        if action == "clear":
            with obs.lock:
                obs.faults = []
            return json_response(200, {"ok": True})
        if action in ("fail", "control"):
            app_keys = {k: v for k, v in body.items() if k in self.app.control_keys}
            fault_keys = {k: v for k, v in body.items() if k not in self.app.control_keys}
            result = {"ok": True}
            if app_keys:
                with self.app_lock:
                    try:
                        result.update(self.app.control(app_keys))
                    except KeyError as exc:
                        return json_response(404, {"error": "no such object: %s" % exc})
                    if self.app.dirty:
                        self.save_state()
                        self.app.dirty = False
            if fault_keys:
                with obs.lock:
                    obs.add_fault(fault_keys)
            return json_response(200, result)
        if action == "dump":
            with self.app_lock:
                return json_response(200, self.app.to_state())
        return json_response(404, {"error": "unknown control %r" % action})

    def save_state(self):
        if not self.state_path:
            return
        tmp = self.state_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.app.to_state(), f)
        os.replace(tmp, self.state_path)


# --- certificates (kube peer always, KMS/Vault peers with --tls) ------------------------------------------------------------------------

def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


def make_certificates(directory):
    """CA, server cert (SAN 127.0.0.1, localhost) and a client cert, all P-256, with the openssl CLI."""
    os.makedirs(directory, exist_ok=True)
    names = ("ca", "server", "client")
    if all(os.path.exists(os.path.join(directory, n + ".crt")) for n in names):
        return {n: os.path.join(directory, n + ".crt") for n in names}   # a restarted peer keeps its CA
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "3",
            "-subj", "/CN=kube-peer-ca", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)
    with open(os.path.join(directory, "server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
                "authorityKeyIdentifier=keyid\n")
    with open(os.path.join(directory, "client.ext"), "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=clientAuth\nauthorityKeyIdentifier=keyid\n")
    for who, subject in (("server", "/CN=127.0.0.1"), ("client", "/CN=kube-peer-client/O=system:masters")):
        openssl("req", "-new", *ec, "-keyout", who + ".key", "-out", who + ".csr", "-subj", subject, cwd=directory)
        openssl("x509", "-req", "-in", who + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-set_serial", str(int.from_bytes(secrets.token_bytes(8), "big")), "-days", "3",
                "-out", who + ".crt", "-extfile", who + ".ext", cwd=directory)
    for name in os.listdir(directory):
        if name.endswith(".key"):
            os.chmod(os.path.join(directory, name), 0o600)
    return {name: os.path.join(directory, name + ".crt") for name in ("ca", "server", "client")}


def tls_server(cert_dir):
    """-> (server SSLContext that also verifies optional client certs, ready-file entries)."""
    certs = make_certificates(cert_dir)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs["server"], os.path.join(cert_dir, "server.key"))
    context.load_verify_locations(certs["ca"])
    context.verify_mode = ssl.CERT_OPTIONAL
    context.set_alpn_protocols(["http/1.1"])
    return context, {"ca": certs["ca"], "client_cert": certs["client"],
                     "client_key": os.path.join(cert_dir, "client.key"), "cert_dir": cert_dir}


def base_arguments(description):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--ready-file", help="JSON {port, url, ...} is written here once listening")
    parser.add_argument("--state", help="JSON file the peer's data persists to across restarts")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    parser.add_argument("--tls", action="store_true", help="serve HTTPS with a CA made at start")
    parser.add_argument("--cert-dir", help="where the CA and certificates are made (default: a temp dir)")
    return parser


def write_ready_file(path, info):
    if not path:
        return
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(info, f)
    os.replace(tmp, path)   # readers never see a half-written file


def run(app, args, tls_context=None, extra_ready=None):
    """Listens, announces readiness, serves until SIGTERM/SIGINT, then exits 0."""
    extra_ready = dict(extra_ready or {})
    if tls_context is None and args.tls:
        tls_context, tls_ready = tls_server(args.cert_dir or tempfile.mkdtemp(prefix=app.name + "-"))
        extra_ready.update(tls_ready)
    if args.state and os.path.exists(args.state) and not getattr(args, "state_loaded", False):
        with open(args.state) as f:
            app.from_state(json.load(f))
    server = PeerServer(app, args.port, args.state, args.verbose)
    scheme = "http"
    if tls_context is not None:
        server.socket = tls_context.wrap_socket(server.socket, server_side=True,
                                                do_handshake_on_connect=False)
        scheme = "https"
    port = server.server_address[1]
    app.bound(scheme, port)
    server.save_state()

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    info = {"port": port, "url": "%s://127.0.0.1:%d" % (scheme, port), "pid": os.getpid()}
    info.update(extra_ready)
    write_ready_file(args.ready_file, info)
    sys.stderr.write("%s listening on %s\n" % (app.name, info["url"]))
    sys.stderr.flush()
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    return 0


class App:
    """Defaults for the hooks PeerServer calls."""
    name = "peer"
    control_keys = ()
    dirty = False

    def bound(self, scheme, port):
        self.scheme, self.port = scheme, port

    def to_state(self):
        return {}

    def from_state(self, state):
        pass

    def control(self, body):
        return {}
