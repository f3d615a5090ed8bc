#!/usr/bin/env bash
# Smoke test for scripts/registries.sh: starts the three test registries in a
# temp dir and proves each auth mode behaves as the Swift integration tests
# expect, using curl (raw protocol) and skopeo (a real client), then stops them.
# Prints "N passed, N failed" last; exits non-zero on any failure.
# Set KEEP=1 to keep the temp dir (logs, storage) even on success.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=/usr/bin/python3

WORK=$(mktemp -d "${TMPDIR:-/tmp}/airgap-registries-smoke.XXXXXX")
REG=$WORK/registries
passed=0
failed=0

cleanup() {
  local rc=$?
  "$SCRIPT_DIR/registries.sh" stop "$REG" || true
  if [ "$rc" -ne 0 ] || [ "$failed" -ne 0 ] || [ "${KEEP:-0}" = 1 ]; then
    echo "kept $WORK for inspection (logs: $REG/*.log)" >&2
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

# refuse NAME PATTERN CMD... : CMD must fail, and its output must match PATTERN
# (so a refusal for the wrong reason, e.g. a typo'd flag, does not pass)
refuse() {
  local name=$1 pattern=$2 out
  shift 2
  if out=$("$@" 2>&1); then
    not_ok "$name (unexpectedly succeeded)"
  elif grep -qiE -- "$pattern" <<<"$out"; then
    ok "$name"
  else
    not_ok "$name (failed, but not with /$pattern/)"
    printf '%s\n' "$out" | tail -n 15 | sed 's/^/    /'
  fi
}

# status NAME WANT CURL_ARGS... : the HTTP status must be WANT
status() {
  local name=$1 want=$2 got
  shift 2
  got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 "$@" || true)
  if [ "$got" = "$want" ]; then ok "$name"; else not_ok "$name (HTTP $got, want $want)"; fi
}

# contains NAME NEEDLE CMD... : CMD's output must contain NEEDLE (any case:
# the TLS registry speaks HTTP/2, where header names are lower-case)
contains() {
  local name=$1 needle=$2 out
  shift 2
  out=$("$@" 2>&1 || true)
  if grep -qiF -- "$needle" <<<"$out"; then ok "$name"; else not_ok "$name (no '$needle')"; printf '%s\n' "$out" | tail -n 5 | sed 's/^/    /'; fi
}

# token SCOPE [CURL_ARGS...] : prints a bearer token from the token server
token() {
  local scope=$1
  shift
  curl -sf "$@" --get "$AIRGAP_TEST_TOKEN_SERVER/token" \
    --data-urlencode "service=$AIRGAP_TEST_TOKEN_SERVICE" --data-urlencode "scope=$scope" |
    "$PY" -c 'import json, sys; print(json.load(sys.stdin)["token"])'
}

# ------------------------------------------------------------------ setup

"$SCRIPT_DIR/registries.sh" start "$REG"
# shellcheck source=/dev/null
. "$REG/env.sh"

# Isolate skopeo from the machine's policy, auth files and registries.d.
printf '{"default":[{"type":"insecureAcceptAnything"}]}\n' >"$WORK/policy.json"
echo '{}' >"$WORK/auth.json"
mkdir -p "$WORK/registries.d"
export REGISTRY_AUTH_FILE=$WORK/auth.json
skopeo() { command skopeo --policy "$WORK/policy.json" --registries.d "$WORK/registries.d" "$@"; }

# A tiny one-layer OCI image.
rootless=()
[ "$(id -u)" -eq 0 ] || rootless=(--rootless)
umoci init --layout "$WORK/oci"
umoci new --image "$WORK/oci:t"
echo "airgap smoke $(date +%s)" >"$WORK/hello.txt"
umoci insert "${rootless[@]}" --image "$WORK/oci:t" "$WORK/hello.txt" /hello.txt
SRC="oci:$WORK/oci:t"
REPO=smoke/tiny
# digest_of SKOPEO_INSPECT_ARGS... : manifest digest as the registry computes it
digest_of() {
  skopeo inspect --raw "$@" >"$WORK/manifest.json" && skopeo manifest-digest "$WORK/manifest.json"
}
WANT_DIGEST=$(digest_of "$SRC")
echo "source image manifest $WANT_DIGEST"

# ------------------------------------------------------------------ plain HTTP

P=$AIRGAP_TEST_REGISTRY_PLAIN
status "plain: /v2/ answers 200 without auth" 200 "http://$P/v2/"
check "plain: skopeo push" skopeo copy --dest-tls-verify=false "$SRC" "docker://$P/$REPO:t"
contains "plain: tag listed" '"t"' curl -s "http://$P/v2/$REPO/tags/list"
contains "plain: repo in catalog" "$REPO" curl -s "http://$P/v2/_catalog"
contains "plain: pulled manifest matches source" "$WANT_DIGEST" digest_of --tls-verify=false "docker://$P/$REPO:t"
status "plain: manifest present by digest" 200 -I \
  -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$P/v2/$REPO/manifests/$WANT_DIGEST"
check "plain: skopeo delete (storage.delete enabled)" skopeo delete --tls-verify=false "docker://$P/$REPO:t"
status "plain: manifest gone after delete" 404 -I \
  -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$P/v2/$REPO/manifests/$WANT_DIGEST"

# ------------------------------------------------------------------ TLS + htpasswd

T=$AIRGAP_TEST_REGISTRY_TLS
TU=$AIRGAP_TEST_REGISTRY_TLS_USER:$AIRGAP_TEST_REGISTRY_TLS_PASSWORD
CA=$AIRGAP_TEST_REGISTRY_TLS_CA
refuse "tls: untrusted without the CA" 'certificate|SSL' curl -sS -o /dev/null "https://$T/v2/"
status "tls: 401 without credentials" 401 --cacert "$CA" "https://$T/v2/"
contains "tls: Basic challenge" 'Www-Authenticate: Basic' curl -si --cacert "$CA" "https://$T/v2/"
status "tls: 401 with a wrong password" 401 --cacert "$CA" -u "$AIRGAP_TEST_REGISTRY_TLS_USER:wrong" "https://$T/v2/"
status "tls: 200 with credentials (127.0.0.1 SAN)" 200 --cacert "$CA" -u "$TU" "https://$T/v2/"
status "tls: 200 via localhost (DNS SAN)" 200 --cacert "$CA" -u "$TU" "https://localhost:${T##*:}/v2/"
refuse "tls: skopeo push without credentials denied" 'unauthorized|authentication required|denied' \
  skopeo copy --dest-cert-dir "$AIRGAP_TEST_REGISTRY_TLS_CERT_DIR" --dest-no-creds "$SRC" "docker://$T/$REPO:t"
check "tls: skopeo push with CA + credentials" \
  skopeo copy --dest-cert-dir "$AIRGAP_TEST_REGISTRY_TLS_CERT_DIR" --dest-creds "$TU" "$SRC" "docker://$T/$REPO:t"
contains "tls: pulled manifest matches source" "$WANT_DIGEST" \
  digest_of --cert-dir "$AIRGAP_TEST_REGISTRY_TLS_CERT_DIR" --creds "$TU" "docker://$T/$REPO:t"
contains "tls: repo in catalog" "$REPO" curl -s --cacert "$CA" -u "$TU" "https://$T/v2/_catalog"

# ------------------------------------------------------------------ Bearer token

K=$AIRGAP_TEST_REGISTRY_TOKEN
KU=$AIRGAP_TEST_REGISTRY_TOKEN_USER:$AIRGAP_TEST_REGISTRY_TOKEN_PASSWORD
contains "token: registry sends Bearer challenge with realm" \
  "Bearer realm=\"$AIRGAP_TEST_TOKEN_SERVER/token\"" curl -si "http://$K/v2/"
status "token server: 401 for wrong password" 401 \
  -u "$AIRGAP_TEST_REGISTRY_TOKEN_USER:wrong" "$AIRGAP_TEST_TOKEN_SERVER/token?service=$AIRGAP_TEST_TOKEN_SERVICE&scope=repository:$REPO:pull"
status "token server: 401 for unknown user" 401 \
  -u "nobody:x" "$AIRGAP_TEST_TOKEN_SERVER/token?service=$AIRGAP_TEST_TOKEN_SERVICE&scope=repository:$REPO:pull"
contains "token server: response has token, access_token, expires_in, issued_at" '"issued_at"' \
  curl -s "$AIRGAP_TEST_TOKEN_SERVER/token?service=$AIRGAP_TEST_TOKEN_SERVICE&scope=repository:$REPO:pull"
ANON=$(token "repository:$REPO:pull,push")
status "token: anonymous token accepted by registry for /v2/" 200 -H "Authorization: Bearer $ANON" "http://$K/v2/"
status "token: anonymous token cannot start an upload" 401 -X POST -H "Authorization: Bearer $ANON" "http://$K/v2/$REPO/blobs/uploads/"
refuse "token: anonymous skopeo push denied" 'unauthorized|authentication required|denied' \
  skopeo copy --dest-tls-verify=false --dest-no-creds "$SRC" "docker://$K/$REPO:t"
check "token: skopeo push with credentials" \
  skopeo copy --dest-tls-verify=false --dest-creds "$KU" "$SRC" "docker://$K/$REPO:t"
check "token: anonymous skopeo pull" \
  skopeo copy --src-tls-verify=false --src-no-creds "docker://$K/$REPO:t" "oci:$WORK/pulled:t"
contains "token: anonymously pulled manifest matches source" "$WANT_DIGEST" \
  digest_of --tls-verify=false --no-creds "docker://$K/$REPO:t"
ANON=$(token "repository:$REPO:pull")
status "token: anonymous token can HEAD the manifest" 200 -I \
  -H 'Accept: application/vnd.oci.image.manifest.v1+json' -H "Authorization: Bearer $ANON" "http://$K/v2/$REPO/manifests/t"
ANON=$(token "registry:catalog:*")
status "token: anonymous token cannot list the catalog" 401 -H "Authorization: Bearer $ANON" "http://$K/v2/_catalog"
AUTH=$(token "registry:catalog:*" -u "$KU")
contains "token: authenticated token lists the catalog" "$REPO" curl -s -H "Authorization: Bearer $AUTH" "http://$K/v2/_catalog"
AUTH=$(token "repository:$REPO:pull,push" -u "$KU")
status "token: pull,push token cannot delete (2.8 wants the delete action)" 401 -X DELETE \
  -H "Authorization: Bearer $AUTH" "http://$K/v2/$REPO/manifests/$WANT_DIGEST"
check "token: skopeo delete with credentials" skopeo delete --tls-verify=false --creds "$KU" "docker://$K/$REPO:t"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
