#!/usr/bin/python3
"""Fault-injecting HTTP/1.1 reverse proxy for airgap's registry tests.

Sits in front of one plain-HTTP registry on loopback and forwards every
request as it is, except where a rule installed through the control API says
to answer an error itself, stall, cut the connection mid-body or truncate the
body. Standard library only.

    /usr/bin/python3 scripts/fault-proxy.py --upstream 127.0.0.1:PORT --port-file FILE

Listens on 127.0.0.1, port 0 (a free one) unless --port is given, writes the
port number (digits, no newline) to FILE once listening, and serves until
SIGTERM or SIGINT, then exits 0.

Control API (JSON; never forwarded, never logged):

    POST   /__faults  {"rules": [RULE, ...]}   replace the rule list
    GET    /__faults                           the rules, with "times" left
    DELETE /__faults                           clear the rules and the log
    GET    /__log                              proxied requests since the
                                               last clear, oldest first

    RULE: {"method": "GET",                   optional, exact (any case)
           "path_contains": "/blobs/sha256:", optional substring of the
                                              request target (path?query)
           "times": 1,                        matching requests it applies
                                              to; default 1
           and exactly one action:
           "status": 503, "retry_after": "1", "body": "..."
                  answer that status without forwarding (retry_after and
                  body optional; the default body is a registry-style JSON
                  error)
           "cut_after": BYTES
                  forward; send the headers as received and the first BYTES
                  of the body, then close the socket (a short read)
           "stall_seconds": S
                  sleep S seconds, then forward normally
           "truncate_body": BYTES
                  forward; send only the first BYTES of the body, with
                  Content-Length: BYTES (a well-formed, shorter response)
           "cut_request_after": BYTES
                  read BYTES of the client's request body (an upload), then
                  close the connection without forwarding or answering
           "rate": BYTES_PER_SECOND
                  forward the whole body, no faster than that (a slow link,
                  for progress and ETA tests)
           "pad_body": BYTES
                  forward the whole body, then BYTES spaces, with the
                  Content-Length grown to match (an oversized response,
                  e.g. a 100 MB manifest; needs an upstream Content-Length)}

    Rules are tried in order; the first one that matches and has times left
    applies, and its times drops by one. Unknown keys are refused (400), so
    a typo cannot turn into a rule that matches everything.

    Log entry: {"method", "path" (request target), "status", "range"
    (request Range header or null), "bytes_sent" (body bytes sent to the
    client), "fault" (the action applied, or null)}. An entry appears when
    the request arrives; status and bytes_sent fill in as it is answered.
"""

import argparse
import http.client
import json
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COPY_SIZE = 64 * 1024
CONTROL_BODY_MAX = 1 << 20
UPSTREAM_TIMEOUT = 300  # seconds; long enough for a big blob PUT to be hashed
ACTIONS = ("status", "cut_after", "stall_seconds", "truncate_body", "pad_body", "cut_request_after", "rate")
RULE_KEYS = {"method", "path_contains", "times", "retry_after", "body", *ACTIONS}
# Per-connection headers (RFC 9110 7.6.1) are the proxy's business, not the
# far side's. Expect is answered here: BaseHTTPRequestHandler sends the
# 100 Continue itself, so the registry must not be asked again.
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-connection", "te", "trailer",
    "transfer-encoding", "upgrade", "expect",
}


class RuleError(ValueError):
    pass


class ClientGone(Exception):
    """The client's request body ended early: its connection is unusable."""


def _int(raw, key, index, minimum=0):
    value = raw[key]
    # bool is an int in Python; "times": true is a mistake, not 1
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise RuleError(f"rule {index}: {key} must be an integer >= {minimum}")
    return value


def parse_rule(raw, index):
    if not isinstance(raw, dict):
        raise RuleError(f"rule {index}: not a JSON object")
    unknown = sorted(set(raw) - RULE_KEYS)
    if unknown:
        raise RuleError(f"rule {index}: unknown keys {unknown}")
    actions = [a for a in ACTIONS if a in raw]
    if len(actions) != 1:
        raise RuleError(f"rule {index}: needs exactly one of {list(ACTIONS)}, has {actions}")
    action = actions[0]
    rule = {"action": action, "times": 1}
    if "method" in raw:
        if not isinstance(raw["method"], str) or not raw["method"]:
            raise RuleError(f"rule {index}: method must be a non-empty string")
        rule["method"] = raw["method"].upper()
    if "path_contains" in raw:
        if not isinstance(raw["path_contains"], str):
            raise RuleError(f"rule {index}: path_contains must be a string")
        rule["path_contains"] = raw["path_contains"]
    if "times" in raw:
        rule["times"] = _int(raw, "times", index)
    if action != "status" and ("retry_after" in raw or "body" in raw):
        raise RuleError(f"rule {index}: retry_after and body go only with status")
    if action == "status":
        status = _int(raw, "status", index, minimum=200)
        if status > 599:
            raise RuleError(f"rule {index}: status must be 200..599")
        rule["status"] = status
        if "retry_after" in raw:
            value = raw["retry_after"]
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise RuleError(f"rule {index}: retry_after must be a string or integer")
            rule["retry_after"] = str(value)
        if "body" in raw:
            if not isinstance(raw["body"], str):
                raise RuleError(f"rule {index}: body must be a string")
            rule["body"] = raw["body"]
    elif action == "stall_seconds":
        value = raw["stall_seconds"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise RuleError(f"rule {index}: stall_seconds must be a number >= 0")
        rule["stall_seconds"] = value
    elif action == "rate":
        rule["rate"] = _int(raw, "rate", index, minimum=1)
    else:
        rule[action] = _int(raw, action, index)
    return rule


def public_rule(rule):
    """A rule as the client wrote it (without the internal "action" key)."""
    return {k: v for k, v in rule.items() if k != "action"}


class State:
    """Rules and log, shared by all handler threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.rules = []
        self.log = []

    def set_rules(self, rules):
        with self.lock:
            self.rules = rules

    def rules_json(self):
        with self.lock:
            return [public_rule(r) for r in self.rules]

    def clear(self):
        with self.lock:
            self.rules = []
            self.log = []

    def take(self, method, target):
        """The first rule matching this request with times left, consumed."""
        with self.lock:
            for rule in self.rules:
                if rule["times"] <= 0:
                    continue
                if "method" in rule and rule["method"] != method:
                    continue
                if "path_contains" in rule and rule["path_contains"] not in target:
                    continue
                rule["times"] -= 1
                return dict(rule)
        return None

    def start_entry(self, method, target, range_header):
        entry = {"method": method, "path": target, "status": None,
                 "range": range_header, "bytes_sent": 0, "fault": None}
        with self.lock:
            self.log.append(entry)
        return entry

    def update(self, entry, **fields):
        # Entries are read under the lock by GET /__log while still filling in.
        with self.lock:
            entry.update(fields)

    def log_json(self):
        with self.lock:
            return [dict(e) for e in self.log]


class ProxyServer(ThreadingHTTPServer):
    daemon_threads = True  # idle keep-alive connections must not delay exit
    request_queue_size = 128  # tests open many connections at once

    def __init__(self, address, upstream, verbose):
        super().__init__(address, Handler)
        self.upstream = upstream
        self.verbose = verbose
        self.state = State()

    def handle_error(self, request, client_address):
        # Clients hanging up (often on purpose, after a fault) are routine.
        if isinstance(sys.exc_info()[1], (ConnectionError, socket.timeout)):
            return
        super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every response is framed
    server_version = "airgap-fault-proxy"

    def log_message(self, fmt, *args):
        if self.server.verbose:
            super().log_message(fmt, *args)

    def do_GET(self):
        target_path = self.path.split("?", 1)[0]
        if target_path in ("/__faults", "/__log"):
            self.control(target_path)
            return
        try:
            self.proxy()
        except (ClientGone, ConnectionError, socket.timeout):
            # The client went away or sent a broken body; nothing to answer.
            self.close_connection = True

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    # ------------------------------------------------------------ request body

    def request_framing(self):
        """(content_length, chunked) of the client's request body."""
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            return None, True
        cl = self.headers.get("Content-Length")
        if cl is None:
            return None, False  # a request without either has no body
        try:
            length = int(cl)
        except ValueError:
            raise ClientGone("bad Content-Length") from None
        if length < 0:
            raise ClientGone("bad Content-Length")
        return length, False

    def request_body(self):
        """Yields the client's request body in pieces, de-chunked."""
        length, chunked = self.request_framing()
        if chunked:
            while True:
                line = self.rfile.readline(65537)
                if not line.endswith(b"\n"):
                    raise ClientGone("chunk size line cut off")
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise ClientGone("bad chunk size") from None
                if size == 0:
                    # Trailers (dropped) up to the blank line that ends the body.
                    while True:
                        line = self.rfile.readline(65537)
                        if not line:
                            raise ClientGone("trailers cut off")
                        if line in (b"\r\n", b"\n"):
                            return
                while size > 0:
                    piece = self.rfile.read(min(size, COPY_SIZE))
                    if not piece:
                        raise ClientGone("chunk cut off")
                    size -= len(piece)
                    yield piece
                if self.rfile.readline(3) not in (b"\r\n", b"\n"):
                    raise ClientGone("chunk not followed by CRLF")
        elif length:
            while length > 0:
                piece = self.rfile.read(min(length, COPY_SIZE))
                if not piece:
                    raise ClientGone("body cut off")
                length -= len(piece)
                yield piece

    def drain_request_body(self):
        # An answered-but-unread body would be parsed as the next request.
        for _ in self.request_body():
            pass

    # ------------------------------------------------------------ helpers

    def client_host(self):
        return self.headers.get("Host") or f"127.0.0.1:{self.server.server_port}"

    def rewrite_location(self, value):
        """Points absolute URLs at the registry back at this proxy, so that a
        client following an upload's Location stays behind the faults."""
        prefix = "http://" + self.server.upstream
        if value[: len(prefix)].lower() == prefix.lower():
            rest = value[len(prefix):]
            if rest == "" or rest[0] in "/?#":  # not 127.0.0.1:50001 for :5000
                return "http://" + self.client_host() + rest
        return value

    def send_simple(self, status, body, content_type, extra=()):
        self.send_response_only(status)
        self.send_header("Date", self.date_time_string())
        self.send_header("Content-Type", content_type)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.log_request(status, len(body))
        return 0 if self.command == "HEAD" else len(body)

    def send_json(self, status, obj, extra=()):
        body = (json.dumps(obj, indent=1) + "\n").encode()
        self.send_simple(status, body, "application/json", extra)

    def hard_close(self):
        """Ends the connection mid-response. shutdown() sends the FIN now, so
        the client reads exactly what was written and then end-of-stream;
        a RST (SO_LINGER 0) could make it drop bytes it had not read yet."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # ------------------------------------------------------------ control API

    def control(self, path):
        length, chunked = None, False
        try:
            length, chunked = self.request_framing()
        except ClientGone:
            self.close_connection = True
        if chunked or (length or 0) > CONTROL_BODY_MAX:
            self.close_connection = True
            self.send_json(400, {"error": "control bodies must have a Content-Length up to 1 MiB"})
            return
        raw = self.rfile.read(length) if length else b""
        state = self.server.state
        if path == "/__log":
            if self.command == "GET":
                self.send_json(200, state.log_json())
            else:
                self.send_json(405, {"error": "GET /__log only"}, [("Allow", "GET")])
            return
        if self.command == "GET":
            self.send_json(200, {"rules": state.rules_json()})
        elif self.command == "DELETE":
            state.clear()
            self.send_json(200, {"rules": []})
        elif self.command == "POST":
            try:
                doc = json.loads(raw or b"null")
                if not isinstance(doc, dict) or not isinstance(doc.get("rules"), list):
                    raise RuleError('body must be {"rules": [...]}')
                rules = [parse_rule(r, i) for i, r in enumerate(doc["rules"])]
            except (ValueError, RuleError) as e:  # JSONDecodeError is a ValueError
                self.send_json(400, {"error": str(e)})
                return
            state.set_rules(rules)
            self.send_json(200, {"rules": state.rules_json()})
        else:
            self.send_json(405, {"error": "GET, POST or DELETE /__faults"},
                           [("Allow", "GET, POST, DELETE")])

    # ------------------------------------------------------------ proxying

    def proxy(self):
        state = self.server.state
        entry = state.start_entry(self.command, self.path, self.headers.get("Range"))
        rule = state.take(self.command, self.path)
        action = rule["action"] if rule else None
        if rule:
            state.update(entry, fault=action)

        if action == "status":
            self.drain_request_body()
            state.update(entry, status=rule["status"])
            sent = self.send_injected(rule)
            state.update(entry, bytes_sent=sent)
            return
        if action == "stall_seconds":
            time.sleep(rule["stall_seconds"])
        if action == "cut_request_after":
            got = 0
            for piece in self.request_body():
                got += len(piece)
                if got >= rule["cut_request_after"]:
                    break
            state.update(entry, bytes_sent=0)
            self.hard_close()
            return

        host, port = self.server.upstream.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=UPSTREAM_TIMEOUT)
        try:
            try:
                self.send_upstream(conn)
            except ClientGone:
                raise
            except (OSError, ValueError, http.client.HTTPException):
                # The registry may have answered early and hung up on the
                # body (e.g. a 4xx); its answer is still worth reading below.
                # The client's unread body leaves its connection unusable.
                self.close_connection = True
            try:
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException) as e:
                self.close_connection = True
                sent = self.send_json_count(502, {"errors": [{
                    "code": "UNAVAILABLE", "message": f"fault-proxy: upstream failed: {e}"}]})
                state.update(entry, status=502, bytes_sent=sent)
                return
            self.relay(resp, rule, entry)
        finally:
            conn.close()

    def send_json_count(self, status, obj):
        body = (json.dumps(obj) + "\n").encode()
        return self.send_simple(status, body, "application/json")

    def send_injected(self, rule):
        status = rule["status"]
        extra = []
        if "retry_after" in rule:
            extra.append(("Retry-After", rule["retry_after"]))
        if "body" in rule:
            body = rule["body"].encode()
            try:
                json.loads(body)
                ctype = "application/json"
            except ValueError:
                ctype = "text/plain; charset=utf-8"
        else:
            # Shaped like a registry's error so clients parse it as one.
            code = "TOOMANYREQUESTS" if status == 429 else "UNAVAILABLE"
            body = (json.dumps({"errors": [{
                "code": code, "message": f"injected by fault-proxy ({status})"}]}) + "\n").encode()
            ctype = "application/json"
        return self.send_simple(status, body, ctype, extra)

    def send_upstream(self, conn):
        conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        # Host names the registry itself; the Location headers it builds from
        # it are pointed back at the proxy in rewrite_location.
        conn.putheader("Host", self.server.upstream)
        drop = HOP_BY_HOP | {"host", "content-length"}
        drop |= {t.strip().lower() for t in self.headers.get("Connection", "").split(",")}
        for k, v in self.headers.items():
            if k.lower() not in drop:
                conn.putheader(k, v)
        length, chunked = self.request_framing()
        if chunked:
            conn.putheader("Transfer-Encoding", "chunked")
        elif length is not None:
            conn.putheader("Content-Length", str(length))
        conn.endheaders()
        for piece in self.request_body():
            if chunked:
                conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            else:
                conn.send(piece)
        if chunked:
            conn.send(b"0\r\n\r\n")

    def relay(self, resp, rule, entry):
        state = self.server.state
        action = rule["action"] if rule else None
        drop = HOP_BY_HOP | {"content-length"}
        drop |= {t.strip().lower() for t in (resp.getheader("Connection") or "").split(",")}
        headers = []
        for k, v in resp.getheaders():
            if k.lower() == "location":
                v = self.rewrite_location(v)
            if k.lower() not in drop:
                headers.append((k, v))

        upstream_length = None
        if not resp.chunked:
            try:
                upstream_length = int(resp.getheader("Content-Length"))
            except (TypeError, ValueError):
                pass
        has_body = (self.command != "HEAD" and resp.status >= 200
                    and resp.status not in (204, 304))

        # Decide how the client's copy is framed, and how much of it to send.
        limit = None  # body bytes to copy; None = all of it
        framing = "length"  # or "chunked" or "close"
        length_header = upstream_length
        prefix = b""  # body bytes already read from upstream
        if action == "truncate_body":
            limit = rule["truncate_body"]
            if upstream_length is not None:
                limit = length_header = min(limit, upstream_length)
            elif has_body:
                # Unknown length: read up to the limit first so that the
                # Content-Length we claim is one we can honour.
                prefix = self.read_upto(resp, limit)
                limit = length_header = len(prefix)
            else:
                length_header = limit
        elif action == "cut_after":
            limit = rule["cut_after"]
        elif action == "pad_body" and has_body and upstream_length is not None:
            length_header = upstream_length + rule["pad_body"]
        if has_body and length_header is None:
            if self.request_version == "HTTP/1.1":
                framing = "chunked"
            else:
                framing = "close"
                self.close_connection = True

        # Recorded first, so a client that has already gone still shows up
        # with the status the registry gave.
        state.update(entry, status=resp.status)
        self.send_response_only(resp.status, resp.reason)
        for k, v in headers:
            self.send_header(k, v)
        if length_header is not None and resp.status not in (204, 304) and resp.status >= 200:
            self.send_header("Content-Length", str(length_header))
        if framing == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
        elif framing == "close":
            self.send_header("Connection", "close")
        self.end_headers()
        self.log_request(resp.status)

        sent = 0
        complete = True
        if has_body:
            sent, complete = self.copy_body(resp, limit, framing == "chunked", entry, prefix,
                                            rate=rule["rate"] if action == "rate" else None)
        if action == "pad_body" and has_body and complete and upstream_length is not None:
            sent += self.send_padding(rule["pad_body"])
        if action == "cut_after":
            self.hard_close()
        elif not complete:
            # The registry's body ended early; so must ours, visibly.
            self.hard_close()
        elif framing == "chunked":
            self.wfile.write(b"0\r\n\r\n")
        state.update(entry, bytes_sent=sent)

    def send_padding(self, n):
        """Writes n spaces; stops quietly when the client hangs up (it may
        refuse an oversized body early, which is the point)."""
        block = b" " * COPY_SIZE
        sent = 0
        try:
            while sent < n:
                piece = block[:min(COPY_SIZE, n - sent)]
                self.wfile.write(piece)
                sent += len(piece)
        except OSError:
            self.close_connection = True
        return sent

    @staticmethod
    def read_upto(resp, n):
        parts, got = [], 0
        while got < n:
            try:
                piece = resp.read1(min(COPY_SIZE, n - got))
            except (OSError, http.client.HTTPException):
                break  # send what arrived; the claimed length shrinks to match
            if not piece:
                break
            parts.append(piece)
            got += len(piece)
        return b"".join(parts)

    def copy_body(self, resp, limit, chunked, entry, prefix=b"", rate=None):
        """Streams the upstream body (after prefix) to the client, at most
        limit bytes (and, with rate, at most rate bytes a second). Returns
        (bytes sent, whether upstream's body was read cleanly up to what was
        needed)."""
        state = self.server.state
        sent = 0
        started = time.monotonic()

        def write(data):
            nonlocal sent
            if chunked:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            else:
                self.wfile.write(data)
            sent += len(data)
            state.update(entry, bytes_sent=sent)
            if rate:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)

        if prefix:
            write(prefix)
        while limit is None or sent < limit:
            want = COPY_SIZE if limit is None else min(COPY_SIZE, limit - sent)
            if rate:
                want = min(want, max(1, rate // 20))  # small pieces: the rate holds over 50 ms
            try:
                # read1: pass on what has arrived rather than wait for a full buffer
                data = resp.read1(want)
            except (OSError, http.client.HTTPException):
                return sent, False
            if not data:
                # End of body: with a Content-Length, http.client counts
                # down resp.length, so anything left means upstream broke off.
                return sent, not resp.length
            write(data)
        return sent, True


def main():
    p = argparse.ArgumentParser(description="Fault-injecting reverse proxy for registry tests.")
    p.add_argument("--upstream", required=True, help="HOST:PORT of the plain-HTTP registry")
    p.add_argument("--port-file", required=True, help="where to write the listening port")
    p.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    p.add_argument("--verbose", action="store_true", help="log each request to stderr")
    args = p.parse_args()

    upstream = args.upstream
    if upstream.startswith("http://"):
        upstream = upstream[len("http://"):].rstrip("/")
    host, _, port = upstream.rpartition(":")
    if not host or not port.isdigit():
        p.error("--upstream must be HOST:PORT")

    server = ProxyServer(("127.0.0.1", args.port), upstream, args.verbose)
    port_no = server.server_address[1]

    # Written atomically after listen(): a test polling for the file never
    # reads it half-written, and can connect as soon as it sees it.
    tmp = f"{args.port_file}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(str(port_no))
    os.replace(tmp, args.port_file)
    print(f"fault-proxy: 127.0.0.1:{port_no} -> {upstream}", file=sys.stderr, flush=True)

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
