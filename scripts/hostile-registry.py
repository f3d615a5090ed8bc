#!/usr/bin/python3
"""A registry that tries to make clients leak credentials, for the credential-origin tests.

It serves one image at /v2/hostile/app:1 behind Basic auth on 127.0.0.1:PORT (HTTPS with
--tls-cert/--tls-key), and:
  - answers the layer's GET with a redirect to http://127.0.0.1:SIDE_PORT (same host, other port,
    plain HTTP), where the bytes are served without auth;
  - answers an upload POST with a Location on http(s)://localhost:PORT (same port, other host name);
  - writes one JSON line per request (port, host header, method, path, whether Authorization came)
    to --log, so the test can check who received credentials.
Loopback only; it stops on SIGTERM.
"""
import argparse
import base64
import hashlib
import http.server
import json
import ssl
import threading

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--side-port", type=int, required=True)
parser.add_argument("--log", required=True)
parser.add_argument("--user", default="alice")
parser.add_argument("--password", default="s3cret-hostile")
parser.add_argument("--tls-cert")
parser.add_argument("--tls-key")
parser.add_argument("--challenge-elsewhere", action="store_true",
                    help="the redirect target answers 401 with a Bearer realm of its own, asking for the credentials")
args = parser.parse_args()

LAYER = b"hostile layer bytes " * 100
CONFIG = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(LAYER).hexdigest()]}}).encode()


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


MANIFEST = json.dumps({
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(CONFIG), "size": len(CONFIG)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(LAYER), "size": len(LAYER)}],
}).encode()
EXPECTED = "Basic " + base64.b64encode(f"{args.user}:{args.password}".encode()).decode()
LOCK = threading.Lock()
SCHEME = "https" if args.tls_cert else "http"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_):
        pass

    def record(self):
        entry = {"port": self.server.server_address[1], "host": self.headers.get("Host", ""), "method": self.command,
                 "path": self.path, "authorization": self.headers.get("Authorization") is not None}
        with LOCK, open(args.log, "a") as log:
            log.write(json.dumps(entry) + "\n")

    def reply(self, status, body=b"", headers=None):
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def drain(self):
        length = int(self.headers.get("Content-Length") or 0)
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 16))
            if not chunk:
                break
            length -= len(chunk)

    def handle_any(self):
        self.record()
        self.drain()
        port = self.server.server_address[1]
        if port == args.side_port:
            if args.challenge_elsewhere and self.path.startswith("/blob/"):
                return self.reply(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}',
                                  {"WWW-Authenticate": f'Bearer realm="http://127.0.0.1:{args.side_port}/token",service="elsewhere"', "Content-Type": "application/json"})
            if self.path.startswith("/token"):
                return self.reply(200, b'{"token":"stolen"}', {"Content-Type": "application/json"})
            if self.path.startswith("/blob/"):
                return self.reply(200, LAYER, {"Content-Type": "application/octet-stream"})
            return self.reply(201 if self.command == "PUT" else 202, b"", {"Location": self.path, "Docker-Content-Digest": digest(LAYER)})
        if self.path.startswith("/upload/"):
            # Reached through the other host name: complete the upload so the client goes on.
            if self.command == "PUT":
                return self.reply(201, b"", {"Docker-Content-Digest": self.path.split("digest=")[-1].replace("%3A", ":")})
            return self.reply(202, b"", {"Location": self.path, "Range": "0-0"})
        if self.headers.get("Authorization") != EXPECTED:
            return self.reply(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', {"WWW-Authenticate": 'Basic realm="hostile"', "Content-Type": "application/json"})
        if self.path == "/v2/" or self.path == "/v2":
            return self.reply(200, b"{}", {"Content-Type": "application/json"})
        parts = self.path.split("?")[0].split("/")
        if "manifests" in parts:
            if self.command == "PUT":
                return self.reply(201, b"", {"Docker-Content-Digest": "sha256:" + "0" * 64})
            return self.reply(200, MANIFEST, {"Content-Type": "application/vnd.oci.image.manifest.v1+json", "Docker-Content-Digest": digest(MANIFEST)})
        if "uploads" in parts and self.command == "POST":
            return self.reply(202, b"", {"Location": f"{SCHEME}://localhost:{port}/upload/1", "Range": "0-0"})
        if "blobs" in parts:
            wanted = parts[-1]
            if self.command == "HEAD":
                return self.reply(404)
            if wanted == digest(CONFIG):
                return self.reply(200, CONFIG, {"Content-Type": "application/octet-stream"})
            if wanted == digest(LAYER):
                return self.reply(307, b"", {"Location": f"http://127.0.0.1:{args.side_port}/blob/{wanted}"})
        return self.reply(404, b'{"errors":[{"code":"NOT_FOUND"}]}', {"Content-Type": "application/json"})

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any


def serve(port, tls):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


threading.Thread(target=serve, args=(args.side_port, False), daemon=True).start()
print("ready", flush=True)
serve(args.port, bool(args.tls_cert))
