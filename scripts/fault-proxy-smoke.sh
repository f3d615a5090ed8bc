#!/usr/bin/env bash
# Smoke test for scripts/fault-proxy.py: starts the test registries and the
# proxy in front of the plain one, pushes and pulls a real image through it
# with skopeo, then drives every fault with curl and checks what a client
# sees and what GET /__log records. Stops everything it started.
# Prints "N passed, N failed" last; exits non-zero on any failure.
# KEEP=1 keeps the temp dir; BIG_MB sets the streaming test's blob size (100).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=/usr/bin/python3
BIG_MB=${BIG_MB:-100}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/airgap-fault-proxy-smoke.XXXXXX")
REG=$WORK/registries
PROXY_PID=
passed=0
failed=0

stop_proxy() {
  # Only the PID we started, and only while it is still our proxy.
  if [ -n "$PROXY_PID" ] && grep -qF fault-proxy.py "/proc/$PROXY_PID/cmdline" 2>/dev/null; then
    kill "$PROXY_PID" 2>/dev/null || true
    wait "$PROXY_PID" 2>/dev/null || true
  fi
  PROXY_PID=
}

cleanup() {
  local rc=$?
  stop_proxy
  "$SCRIPT_DIR/registries.sh" stop "$REG" || true
  if [ "$rc" -ne 0 ] || [ "$failed" -ne 0 ] || [ "${KEEP:-0}" = 1 ]; then
    echo "kept $WORK for inspection (proxy log: $WORK/proxy.log)" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

ok() { passed=$((passed + 1)); echo "ok - $1"; }
not_ok() { failed=$((failed + 1)); echo "not ok - $1"; }

# check NAME CMD... : CMD must succeed; its output is shown only on failure
check() {
  local name=$1 out
  shift
  if out=$("$@" 2>&1); then ok "$name"; else not_ok "$name"; printf '%s\n' "$out" | tail -n 15 | sed 's/^/    /'; fi
}

# equal NAME WANT GOT
equal() {
  if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1 (got '$3', want '$2')"; fi
}

# contains NAME NEEDLE CMD... : CMD's output must contain NEEDLE (any case)
contains() {
  local name=$1 needle=$2 out
  shift 2
  out=$("$@" 2>&1 || true)
  if grep -qiF -- "$needle" <<<"$out"; then ok "$name"; else not_ok "$name (no '$needle')"; printf '%s\n' "$out" | tail -n 8 | sed 's/^/    /'; fi
}

# code URL CURL_ARGS... : prints the HTTP status (000 if none)
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 30 "$@" || true; }

# curl_rc CURL_ARGS... : prints curl's exit code
curl_rc() {
  local rc=0
  curl -s --max-time 30 "$@" || rc=$?
  echo "$rc"
}

# faults JSON_RULES : installs a rule list; fails the run on a refusal
faults() {
  curl -sf --max-time 10 -X POST -H 'Content-Type: application/json' \
    --data "{\"rules\": $1}" "http://$PROXY/__faults" >/dev/null ||
    { echo "could not install rules $1" >&2; exit 1; }
}

clear_faults() { curl -sf --max-time 10 -X DELETE "http://$PROXY/__faults" >/dev/null; }

# log_true NAME PYTHON_EXPR : EXPR, over `log` (GET /__log), must be true
log_true() {
  local name=$1 expr=$2 out
  if out=$(curl -sf --max-time 10 "http://$PROXY/__log" |
    "$PY" -c "import json, sys; log = json.load(sys.stdin); sys.exit(0 if ($expr) else 1)" 2>&1); then
    ok "$name"
  else
    not_ok "$name"
    printf '%s\n' "$out" | tail -n 5 | sed 's/^/    /'
    curl -s --max-time 10 "http://$PROXY/__log" | tail -n 30 | sed 's/^/    /'
  fi
}

file_size() { stat -c %s "$1"; }

# ------------------------------------------------------------------ setup

"$SCRIPT_DIR/registries.sh" start "$REG"
# shellcheck source=/dev/null
. "$REG/env.sh"
UP=$AIRGAP_TEST_REGISTRY_PLAIN

"$PY" "$SCRIPT_DIR/fault-proxy.py" --upstream "$UP" --port-file "$WORK/proxy.port" \
  --verbose 2>"$WORK/proxy.log" &
PROXY_PID=$!
for _ in $(seq 1 100); do
  [ -s "$WORK/proxy.port" ] && break
  kill -0 "$PROXY_PID" 2>/dev/null || { cat "$WORK/proxy.log" >&2; exit 1; }
  sleep 0.1
done
PORT=$(cat "$WORK/proxy.port")
PROXY=127.0.0.1:$PORT
echo "proxy $PROXY -> registry $UP"

# Isolate skopeo from the machine's policy, auth files and registries.d.
printf '{"default":[{"type":"insecureAcceptAnything"}]}\n' >"$WORK/policy.json"
echo '{}' >"$WORK/auth.json"
mkdir -p "$WORK/registries.d"
export REGISTRY_AUTH_FILE=$WORK/auth.json
skopeo() { command skopeo --policy "$WORK/policy.json" --registries.d "$WORK/registries.d" "$@"; }

# A one-layer OCI image whose layer is ~1 MB of random (incompressible)
# bytes, big enough for a cut in the middle to be obvious.
rootless=()
[ "$(id -u)" -eq 0 ] || rootless=(--rootless)
umoci init --layout "$WORK/oci"
umoci new --image "$WORK/oci:t"
head -c 1000000 /dev/urandom >"$WORK/random.bin"
umoci insert "${rootless[@]}" --image "$WORK/oci:t" "$WORK/random.bin" /random.bin
SRC="oci:$WORK/oci:t"
REPO=test/img
LAYER=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["layers"][0]["digest"])' \
  <(skopeo inspect --raw "$SRC"))
skopeo inspect --raw "$SRC" >"$WORK/manifest.json"
WANT_DIGEST=$(skopeo manifest-digest "$WORK/manifest.json")
BLOB_URL=http://$PROXY/v2/$REPO/blobs/$LAYER
MANIFEST_URL=http://$PROXY/v2/$REPO/manifests/1
OCI_ACCEPT='Accept: application/vnd.oci.image.manifest.v1+json'

# ------------------------------------------------------------------ basics

equal "port file holds a number" yes "$([[ $PORT =~ ^[0-9]+$ ]] && echo yes || echo no)"
equal "GET /v2/ through the proxy" 200 "$(code "http://$PROXY/v2/")"
equal "two actions in one rule refused" 400 \
  "$(code -X POST --data '{"rules":[{"status":500,"cut_after":1}]}' "http://$PROXY/__faults")"
equal "unknown rule key refused" 400 \
  "$(code -X POST --data '{"rules":[{"path_contain":"x","status":500}]}' "http://$PROXY/__faults")"
equal "non-JSON rules refused" 400 "$(code -X POST --data 'nope' "http://$PROXY/__faults")"
log_true "control requests are not logged" 'all(e["path"] == "/v2/" for e in log)'

# ------------------------------------------------------------------ push / pull

clear_faults
check "skopeo push through the proxy" skopeo copy --dest-tls-verify=false "$SRC" "docker://$PROXY/$REPO:1"
log_true "upload PATCH/PUT came back through the proxy (Location rewritten)" \
  'any(e["method"] == "PUT" and "/blobs/uploads/" in e["path"] and e["status"] == 201 for e in log)'
LOC=$(curl -si --max-time 10 -X POST "http://$PROXY/v2/$REPO/blobs/uploads/" | tr -d '\r' |
  sed -n 's/^[Ll]ocation: //p')
contains "upload Location points at the proxy" "http://$PROXY/v2/$REPO/blobs/uploads/" echo "$LOC"
equal "upload cancelled through the rewritten Location" 204 "$(code -X DELETE "$LOC")"
skopeo inspect --raw --tls-verify=false "docker://$PROXY/$REPO:1" >"$WORK/pulled.json" || true
contains "manifest pulled through the proxy matches the source" "$WANT_DIGEST" \
  skopeo manifest-digest "$WORK/pulled.json"
check "skopeo pull through the proxy" \
  skopeo copy --src-tls-verify=false "docker://$PROXY/$REPO:1" "oci:$WORK/pulled:t"

curl -s --max-time 30 -o "$WORK/upstream.blob" "http://$UP/v2/$REPO/blobs/$LAYER"
curl -s --max-time 30 -o "$WORK/proxied.blob" "$BLOB_URL"
check "blob through the proxy equals the registry's bytes" cmp "$WORK/upstream.blob" "$WORK/proxied.blob"
equal "blob through the proxy has its digest" "$LAYER" "sha256:$(sha256sum "$WORK/proxied.blob" | cut -d' ' -f1)"
BLOB_SIZE=$(file_size "$WORK/upstream.blob")

out=$(curl -sv --max-time 30 -o "$WORK/ka1" "$BLOB_URL" -o "$WORK/ka2" "$BLOB_URL" 2>&1 || true)
contains "keep-alive: second request reuses the connection" "Re-using existing connection" echo "$out"
check "keep-alive: both bodies complete" sh -c "cmp '$WORK/upstream.blob' '$WORK/ka1' && cmp '$WORK/upstream.blob' '$WORK/ka2'"

# ------------------------------------------------------------------ cut_after

clear_faults
faults '[{"method": "GET", "path_contains": "/blobs/sha256:", "cut_after": 1000}]'
equal "cut_after: curl reports a short read (18)" 18 "$(curl_rc -o "$WORK/cut.blob" "$BLOB_URL")"
equal "cut_after: exactly 1000 bytes arrived" 1000 "$(file_size "$WORK/cut.blob")"
check "cut_after: those bytes are the blob's first 1000" \
  sh -c "head -c 1000 '$WORK/upstream.blob' | cmp - '$WORK/cut.blob'"
equal "cut_after: the next request succeeds" 0 "$(curl_rc -o "$WORK/after-cut.blob" "$BLOB_URL")"
check "cut_after: and is whole" cmp "$WORK/upstream.blob" "$WORK/after-cut.blob"
log_true "log: cut recorded with bytes_sent 1000" \
  'log[0]["fault"] == "cut_after" and log[0]["bytes_sent"] == 1000 and log[0]["status"] == 200'
log_true "log: following request recorded whole" "log[1][\"bytes_sent\"] == $BLOB_SIZE and log[1][\"fault\"] is None"
contains "GET /__faults shows times 0" '"times": 0' curl -s --max-time 10 "http://$PROXY/__faults"

# ------------------------------------------------------------------ Range

clear_faults
equal "Range bytes=100- answered 206 by the registry" 206 \
  "$(curl -s --max-time 30 -o "$WORK/range.blob" -w '%{http_code}' -H 'Range: bytes=100-' "$BLOB_URL" || true)"
check "Range: body is the blob from offset 100" \
  sh -c "tail -c +101 '$WORK/upstream.blob' | cmp - '$WORK/range.blob'"
log_true "log: Range header and 206 recorded" \
  "log[-1][\"range\"] == \"bytes=100-\" and log[-1][\"status\"] == 206 and log[-1][\"bytes_sent\"] == $BLOB_SIZE - 100"

# Resuming after a cut, as a client would: cut at 4096, then Range from there.
faults '[{"path_contains": "/blobs/", "cut_after": 4096}]'
curl -s --max-time 30 -o "$WORK/resume.blob" "$BLOB_URL" || true
have=$(file_size "$WORK/resume.blob")
curl -s --max-time 30 -H "Range: bytes=$have-" "$BLOB_URL" >>"$WORK/resume.blob"
check "cut then Range resume reassembles the blob" cmp "$WORK/upstream.blob" "$WORK/resume.blob"

# ------------------------------------------------------------------ status

clear_faults
faults '[{"status": 429, "retry_after": "1"}]'
hdrs=$(curl -si --max-time 10 "http://$PROXY/v2/" | tr -d '\r')
equal "429 returned" "HTTP/1.1 429 Too Many Requests" "$(head -n 1 <<<"$hdrs")"
contains "429 carries Retry-After: 1" "Retry-After: 1" echo "$hdrs"
contains "429 default body is a registry error" "TOOMANYREQUESTS" echo "$hdrs"
equal "times defaults to 1: next request passes" 200 "$(code "http://$PROXY/v2/")"

faults '[{"method": "GET", "path_contains": "/manifests/", "times": 2, "status": 503, "body": "try later"}]'
equal "times 2: first 503" 503 "$(code -H "$OCI_ACCEPT" "$MANIFEST_URL")"
equal "times 2: second 503" 503 "$(code -H "$OCI_ACCEPT" "$MANIFEST_URL")"
equal "times 2: third passes" 200 "$(code -H "$OCI_ACCEPT" "$MANIFEST_URL")"
faults '[{"status": 502, "body": "try later"}]'
equal "custom body" "try later" "$(curl -s --max-time 10 "http://$PROXY/v2/")"

faults '[{"method": "HEAD", "status": 500}]'
equal "method filter: GET not matched by a HEAD rule" 200 "$(code "http://$PROXY/v2/")"
equal "method filter: HEAD matched" 500 "$(code -I "http://$PROXY/v2/")"

faults '[{"path_contains": "/nomatch/", "status": 500}, {"path_contains": "/v2/", "status": 502}, {"status": 503}]'
equal "rules tried in order, first match wins" 502 "$(code "http://$PROXY/v2/")"
equal "then the next rule with times left" 503 "$(code "http://$PROXY/v2/")"

# An injected answer to an upload must not leave its body in the stream:
# the next request on the same connection must parse. (-w applies to both.)
faults '[{"method": "PATCH", "status": 500}]'
LOC=$(curl -si --max-time 10 -X POST "http://$PROXY/v2/$REPO/blobs/uploads/" | tr -d '\r' |
  sed -n 's/^[Ll]ocation: //p')
out=$(curl -sv --max-time 30 -w '%{http_code} ' -o /dev/null -X PATCH --data-binary "@$WORK/random.bin" "$LOC" \
  --next -o /dev/null -w '%{http_code} ' "http://$PROXY/v2/" 2>&1 || true)
contains "injected status on a PATCH drains its body (next request on the connection works)" "500 200" echo "$out"
contains "... over the same connection" "Re-using existing connection" echo "$out"

# ------------------------------------------------------------------ truncate_body

clear_faults
curl -s --max-time 10 -H "$OCI_ACCEPT" -o "$WORK/manifest.full" "$MANIFEST_URL"
faults '[{"path_contains": "/manifests/", "truncate_body": 100}]'
rc=0
out=$(curl -sv --max-time 30 -H "$OCI_ACCEPT" -o "$WORK/manifest.short" "$MANIFEST_URL" \
  -o "$WORK/manifest.again" "$MANIFEST_URL" 2>&1) || rc=$?
equal "truncate_body: curl sees a complete response" 0 "$rc"
contains "truncate_body: Content-Length says 100" "Content-Length: 100" echo "$out"
check "truncate_body: body is the manifest's first 100 bytes" \
  sh -c "head -c 100 '$WORK/manifest.full' | cmp - '$WORK/manifest.short'"
contains "truncate_body: connection kept alive" "Re-using existing connection" echo "$out"
check "truncate_body: next response whole" cmp "$WORK/manifest.full" "$WORK/manifest.again"
log_true "log: truncation recorded" 'log[1]["fault"] == "truncate_body" and log[1]["bytes_sent"] == 100'

# ------------------------------------------------------------------ stall_seconds

clear_faults
faults '[{"stall_seconds": 3}, {"stall_seconds": 1}]'
equal "stall 3s: a 1s client timeout fires (28)" 28 "$(curl_rc -o /dev/null --max-time 1 "http://$PROXY/v2/")"
start=$(date +%s%N)
got=$(code "http://$PROXY/v2/")
took_ms=$((($(date +%s%N) - start) / 1000000))
equal "stall 1s: then answered" 200 "$got"
equal "stall 1s: took at least 1s (${took_ms} ms)" yes "$([ "$took_ms" -ge 1000 ] && echo yes || echo no)"

# ------------------------------------------------------------------ request bodies

clear_faults
head -c 300000 /dev/urandom >"$WORK/chunked.bin"
CD=sha256:$(sha256sum "$WORK/chunked.bin" | cut -d' ' -f1)
LOC=$(curl -si --max-time 10 -X POST "http://$PROXY/v2/$REPO/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
LOC=$(curl -si --max-time 30 -X PATCH -H 'Transfer-Encoding: chunked' -H 'Content-Type: application/octet-stream' \
  --data-binary "@$WORK/chunked.bin" "$LOC" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
equal "chunked PATCH then PUT completes the upload" 201 "$(code -X PUT "$LOC&digest=$CD")"
check "chunked upload stored intact" sh -c "curl -s --max-time 30 'http://$UP/v2/$REPO/blobs/$CD' | cmp - '$WORK/chunked.bin'"

# A big monolithic PUT (curl sends Expect: 100-continue) and GET: streamed,
# so the proxy's peak memory stays far below the blob's size.
head -c "$((BIG_MB * 1000000))" /dev/urandom >"$WORK/big.bin"
BD=sha256:$(sha256sum "$WORK/big.bin" | cut -d' ' -f1)
LOC=$(curl -si --max-time 10 -X POST "http://$PROXY/v2/$REPO/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
equal "${BIG_MB} MB monolithic PUT through the proxy" 201 "$(code --max-time 300 -X PUT -T "$WORK/big.bin" "$LOC&digest=$BD")"
check "${BIG_MB} MB GET through the proxy is intact" \
  sh -c "curl -s --max-time 300 'http://$PROXY/v2/$REPO/blobs/$BD' | cmp - '$WORK/big.bin'"
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$PROXY_PID/status")
equal "proxy peak memory under 64 MB (was ${hwm} kB)" yes "$([ "$hwm" -lt 65536 ] && echo yes || echo no)"
rm -f "$WORK/big.bin"

# ------------------------------------------------------------------ log, clear, stop

log_true "log entries have exactly the documented fields" \
  'log and all(set(e) == {"method", "path", "status", "range", "bytes_sent", "fault"} for e in log)'
log_true "log: methods POST, PATCH, PUT, GET all recorded" \
  '{"POST", "PATCH", "PUT", "GET"} <= {e["method"] for e in log}'
clear_faults
log_true "DELETE /__faults empties the log" 'log == []'
contains "DELETE /__faults empties the rules" '"rules": []' curl -s --max-time 10 "http://$PROXY/__faults"

kill "$PROXY_PID"
rc=0
for _ in $(seq 1 50); do
  kill -0 "$PROXY_PID" 2>/dev/null || break
  sleep 0.1
done
wait "$PROXY_PID" || rc=$?
PROXY_PID=
equal "SIGTERM: proxy exits 0" 0 "$rc"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
