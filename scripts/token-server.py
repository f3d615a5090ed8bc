#!/usr/bin/python3
"""Minimal Docker registry token server for airgap's integration tests.

Implements the GET flavour of the Docker token protocol
(https://distribution.github.io/distribution/spec/auth/token/):

    GET /token?service=SVC&scope=repository:NAME:pull,push[&scope=...]

* no Authorization header      -> token granting only "pull" on repositories
* valid HTTP Basic credentials -> token granting every requested action among
                                  pull/push/delete on repositories and "*" on
                                  registry:catalog:*
* any other Authorization      -> 401

Tokens are JWTs (RS256 for an RSA key, ES256 for EC P-256) whose header
carries the signing certificate chain in "x5c" (what distribution 2.8 checks
first) plus a libtrust-style "kid", which 2.8 also accepts on its own.

Runs on Debian's /usr/bin/python3 with python3-jwt and python3-cryptography.
"""

import argparse
import base64
import datetime
import hashlib
import hmac
import json
import secrets
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

TOKEN_TTL = 300
REPO_ACTIONS = ("pull", "push", "delete")


def libtrust_key_id(public_key):
    """Key ID as distribution 2.8 (via docker/libtrust) derives it for its
    rootcertbundle: SHA-256 of the DER SubjectPublicKeyInfo, first 240 bits,
    base32, in colon-separated groups of four."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(b32[i : i + 4] for i in range(0, len(b32), 4))


def load_cert_chain(pem):
    """All certificates in a PEM bundle, in file order (cryptography 38 on
    Debian 12 predates load_pem_x509_certificates)."""
    begin, end = b"-----BEGIN CERTIFICATE-----", b"-----END CERTIFICATE-----"
    blocks = [b[b.index(begin):] + end + b"\n" for b in pem.split(end) if begin in b]
    if not blocks:
        raise SystemExit("token-server: no certificate in --cert file")
    return [x509.load_pem_x509_certificate(b) for b in blocks]


def parse_scopes(values):
    """Yield (type, name, [actions]) for each scope; a single scope parameter
    may also hold several space-separated scopes (OAuth2 style)."""
    for value in values:
        for scope in value.split():
            # the name may itself contain ':' (e.g. a host:port prefix), so
            # split the type off the front and the actions off the back
            typ, sep, rest = scope.partition(":")
            name, sep2, actions = rest.rpartition(":")
            if not sep or not sep2 or not name:
                raise ValueError("malformed scope %r" % scope)
            yield typ, name, [a for a in actions.split(",") if a]


def grant(typ, name, requested, authenticated):
    """Actions to put in the token for one requested scope."""
    # "repository(plugin)"-style resource classes are still repositories
    base_type = typ.split("(", 1)[0]
    if base_type == "repository":
        allowed = REPO_ACTIONS if authenticated else ("pull",)
        if authenticated and "*" in requested:
            return list(allowed)
        return [a for a in requested if a in allowed]
    if base_type == "registry" and name == "catalog" and authenticated:
        return [a for a in requested if a == "*"]
    return []


class Config:
    def __init__(self, args):
        with open(args.key, "rb") as f:
            self.key = serialization.load_pem_private_key(f.read(), password=None)
        with open(args.cert, "rb") as f:
            chain = load_cert_chain(f.read())
        # x5c is standard base64 (not base64url) of each DER certificate, leaf first
        self.x5c = [
            base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()
            for c in chain
        ]
        self.kid = libtrust_key_id(chain[0].public_key())
        self.issuer = args.issuer
        self.service = args.service
        self.users = {}
        with open(args.users, encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\n")
                if line and not line.startswith("#"):
                    user, _, password = line.partition(":")
                    self.users[user] = password
        if isinstance(self.key, rsa.RSAPrivateKey):
            self.algorithm = "RS256"
        elif isinstance(self.key, ec.EllipticCurvePrivateKey) and self.key.curve.name == "secp256r1":
            self.algorithm = "ES256"
        else:
            raise SystemExit("token-server: key must be RSA or EC P-256")


class Handler(BaseHTTPRequestHandler):
    server_version = "airgap-test-token-server/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write(
            "%s %s %s\n"
            % (datetime.datetime.now().isoformat(timespec="seconds"), self.address_string(), fmt % args)
        )

    def send_json(self, status, body, extra_headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra_headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def unauthorized(self, message):
        self.send_json(
            401,
            {"errors": [{"code": "UNAUTHORIZED", "message": message}]},
            [("WWW-Authenticate", 'Basic realm="airgap-test-token-server"')],
        )

    def authenticate(self):
        """Return (ok, username); username is "" for anonymous requests."""
        header = self.headers.get("Authorization")
        if header is None:
            return True, ""
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False, None
        try:
            user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False, None
        expected = self.server.config.users.get(user)
        if not sep or expected is None:
            return False, None
        # constant-time compare, on bytes so non-ASCII passwords work
        if not hmac.compare_digest(password.encode(), expected.encode()):
            return False, None
        return True, user

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/healthz":
            self.send_json(200, {"ok": True})
            return
        if url.path != "/token":
            self.send_json(404, {"errors": [{"code": "NOT_FOUND", "message": url.path}]})
            return
        cfg = self.server.config
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)

        ok, user = self.authenticate()
        if not ok:
            self.unauthorized("invalid credentials")
            return

        service = query.get("service", [cfg.service])[0]
        if service != cfg.service:
            self.send_json(400, {"errors": [{"code": "INVALID_REQUEST", "message": "unknown service %r" % service}]})
            return
        try:
            scopes = list(parse_scopes(query.get("scope", [])))
        except ValueError as e:
            self.send_json(400, {"errors": [{"code": "INVALID_REQUEST", "message": str(e)}]})
            return

        # merge duplicate resources so each appears once in the claim
        access = {}
        for typ, name, actions in scopes:
            granted = grant(typ, name, actions, authenticated=bool(user))
            entry = access.setdefault((typ, name), [])
            entry.extend(a for a in granted if a not in entry)
        # resources with nothing granted are left out rather than listed empty
        access_claim = [{"type": t, "name": n, "actions": a} for (t, n), a in access.items() if a]

        now = int(time.time())
        claims = {
            "iss": cfg.issuer,
            "sub": user,
            # distribution 2.8 decodes "aud" into a Go string, so never a list
            "aud": cfg.service,
            "exp": now + TOKEN_TTL,
            # distribution allows 60s leeway, keep nbf slightly in the past for skew
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": access_claim,
        }
        token = jwt.encode(
            claims,
            cfg.key,
            algorithm=cfg.algorithm,
            headers={"x5c": cfg.x5c, "kid": cfg.kid},
        )
        issued = datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
        self.send_json(
            200,
            {
                "token": token,
                "access_token": token,
                "expires_in": TOKEN_TTL,
                "issued_at": issued.strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
        )

    def do_HEAD(self):
        self.do_GET()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--key", required=True, help="PEM private key (RSA or EC P-256)")
    p.add_argument("--cert", required=True, help="PEM certificate chain for the key, leaf first; the registry's rootcertbundle")
    p.add_argument("--issuer", required=True, help="must equal the registry's auth.token.issuer")
    p.add_argument("--service", required=True, help="must equal the registry's auth.token.service")
    p.add_argument("--users", required=True, help="file of user:password lines")
    args = p.parse_args()

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    server.config = Config(args)
    sys.stderr.write("token server listening on http://%s:%d\n" % (args.host, args.port))
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
