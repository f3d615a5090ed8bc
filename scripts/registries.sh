#!/usr/bin/env bash
# Starts / stops three real CNCF distribution (docker-registry 2.8) instances
# on 127.0.0.1 for airgap's integration tests, one per auth mode:
#
#   plain  HTTP, no auth
#   tls    HTTPS with a throwaway CA, htpasswd (bcrypt) Basic auth
#   token  HTTP, Bearer token auth backed by scripts/token-server.py
#
# Usage:
#   scripts/registries.sh start DIR   # then: source DIR/env.sh
#   scripts/registries.sh stop DIR
#
# Everything (storage, certificates, configs, logs, PIDs) lives under DIR, so
# several runs can coexist; ports are chosen free at start time.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=/usr/bin/python3               # Debian's python has python3-jwt; the PATH one may not
TOKEN_SERVICE=airgap-test-registry
TOKEN_ISSUER=airgap-test-token-server
TLS_USER=airgap-tls
TOKEN_USER=airgap-token
declare -A PORTS=() # service name -> port, filled by launch

usage() {
  echo "usage: $0 start|stop DIR" >&2
  exit 2
}

log() { echo "registries: $*" >&2; }

# Prints a free loopback port (the kernel's pick for port 0). Another process
# could grab it before the service binds; launch retries if that happens.
free_port() {
  "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# distribution maps every REGISTRY_* environment variable onto its config
# (e.g. skopeo's REGISTRY_AUTH_FILE would become auth.file), so the registries
# run through `env -u` for each of them. An array, not a function, so that $!
# is the registry's own PID.
CLEAN_ENV=(env)
for v in $(compgen -e); do
  case "$v" in REGISTRY_*) CLEAN_ENV+=(-u "$v") ;; esac
done

# Whether PID is alive and is one of ours (its command line mentions DIR), so
# a recycled PID never gets killed.
is_ours() {
  local pid=$1
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] &&
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$DIR/"
}

# ---------------------------------------------------------------- certificates

make_pki() {
  local tls=$DIR/tls token=$DIR/token
  mkdir -p "$tls/certs.d" "$token"

  # Throwaway CA for the TLS registry.
  openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 825 \
    -keyout "$tls/ca.key" -out "$tls/ca.pem" -subj "/CN=airgap test CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

  # Server certificate: Go and most TLS stacks ignore the CN, so the SANs are
  # what makes both https://127.0.0.1 and https://localhost verify.
  openssl req -newkey rsa:2048 -nodes -sha256 \
    -keyout "$tls/server.key" -out "$tls/server.csr" -subj "/CN=localhost" 2>/dev/null
  cat >"$tls/server.ext" <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EOF
  openssl x509 -req -sha256 -days 825 -in "$tls/server.csr" \
    -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -set_serial "0x$(openssl rand -hex 8)" \
    -extfile "$tls/server.ext" -out "$tls/server.pem" 2>/dev/null
  # containers/image (skopeo, podman) wants a directory holding ca.crt
  cp "$tls/ca.pem" "$tls/certs.d/ca.crt"

  # Token signing key; its self-signed certificate is the registry's
  # rootcertbundle and travels in each JWT's x5c header.
  openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 825 \
    -keyout "$token/signer.key" -out "$token/signer.pem" \
    -subj "/CN=airgap test token signer" 2>/dev/null
}

# ---------------------------------------------------------------- configs

# write_config NAME PORT EXTRA_YAML
write_config() {
  local name=$1 port=$2 extra=$3
  mkdir -p "$DIR/$name/data"
  # No blobdescriptor cache: with deletes enabled the in-memory cache can keep
  # answering for blobs that were already removed.
  cat >"$DIR/$name/config.yml" <<EOF
version: 0.1
log:
  level: info
  formatter: text
  fields:
    service: registry-$name
storage:
  filesystem:
    rootdirectory: $DIR/$name/data
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: $(openssl rand -hex 16)
  headers:
    X-Content-Type-Options: [nosniff]
$extra
EOF
}

# ---------------------------------------------------------------- processes

# spawn NAME CMD... : runs CMD in the background, logging to DIR/NAME.log
spawn() {
  local name=$1
  shift
  "$@" </dev/null >>"$DIR/$name.log" 2>&1 &
  echo $! >"$DIR/pids/$name.pid"
}

# wait_up NAME URL CURL_ARGS... : waits until URL answers 200 or 401.
# Returns 1 if the process died (caller may retry), exits on timeout.
wait_up() {
  local name=$1 url=$2
  shift 2
  local pid code _
  pid=$(cat "$DIR/pids/$name.pid")
  for _ in $(seq 1 150); do
    if ! kill -0 "$pid" 2>/dev/null; then
      return 1
    fi
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" "$url" || true)
    case "$code" in
      200 | 401) return 0 ;;
    esac
    sleep 0.1
  done
  log "$name did not answer $url within 15s (last status: ${code:-none}); log follows"
  cat "$DIR/$name.log" >&2 || true
  exit 1
}

# launch NAME URL_SCHEME START_FN [curl args] : picks a port, calls START_FN
# PORT, waits; retries with another port if the process died of a port clash.
launch() {
  local name=$1 scheme=$2 start_fn=$3
  shift 3
  local port _
  for _ in 1 2 3; do
    port=$(free_port)
    : >"$DIR/$name.log"
    "$start_fn" "$port"
    if wait_up "$name" "$scheme://127.0.0.1:$port$(health_path "$name")" "$@"; then
      PORTS[$name]=$port
      return 0
    fi
    if grep -qi 'address already in use' "$DIR/$name.log"; then
      log "$name: port $port taken meanwhile, retrying"
      continue
    fi
    break
  done
  log "$name exited during startup; log follows"
  cat "$DIR/$name.log" >&2 || true
  exit 1
}

health_path() {
  if [ "$1" = token-server ]; then echo /healthz; else echo /v2/; fi
}

start_plain() {
  write_config plain "$1" ""
  spawn plain "${CLEAN_ENV[@]}" docker-registry serve "$DIR/plain/config.yml"
}

start_tls() {
  write_config tls "$1" "  tls:
    certificate: $DIR/tls/server.pem
    key: $DIR/tls/server.key
auth:
  htpasswd:
    realm: airgap-test-tls
    path: $DIR/tls/htpasswd"
  spawn tls "${CLEAN_ENV[@]}" docker-registry serve "$DIR/tls/config.yml"
}

start_token_server() {
  spawn token-server "$PY" -u "$SCRIPT_DIR/token-server.py" --host 127.0.0.1 --port "$1" \
    --key "$DIR/token/signer.key" --cert "$DIR/token/signer.pem" \
    --issuer "$TOKEN_ISSUER" --service "$TOKEN_SERVICE" --users "$DIR/token/users"
}

start_token() {
  write_config token "$1" "auth:
  token:
    realm: http://127.0.0.1:${PORTS[token-server]}/token
    service: $TOKEN_SERVICE
    issuer: $TOKEN_ISSUER
    rootcertbundle: $DIR/token/signer.pem"
  spawn token "${CLEAN_ENV[@]}" docker-registry serve "$DIR/token/config.yml"
}

# ---------------------------------------------------------------- commands

stop_all() {
  local f pid name _
  rm -f "$DIR/env.sh"
  shopt -s nullglob
  for f in "$DIR"/pids/*.pid; do
    name=$(basename "$f" .pid)
    pid=$(cat "$f")
    if is_ours "$pid"; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      if kill -0 "$pid" 2>/dev/null; then
        log "$name ($pid) ignored SIGTERM, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
      fi
    fi
    rm -f "$f"
  done
}

on_start_exit() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    log "start failed, stopping what was started"
    stop_all
  fi
}

cmd_start() {
  if [ -e "$DIR/env.sh" ] || compgen -G "$DIR/pids/*.pid" >/dev/null; then
    log "$DIR already has registries (or stale PID files); run: $0 stop $DIR"
    exit 1
  fi
  for cmd in docker-registry htpasswd openssl curl; do
    command -v "$cmd" >/dev/null || { log "$cmd not found; run scripts/install-deps.sh"; exit 1; }
  done
  mkdir -p "$DIR/pids"

  # If anything below fails, do not leave half the set running.
  trap on_start_exit EXIT

  make_pki
  local tls_password token_password
  tls_password=$(openssl rand -hex 12)
  token_password=$(openssl rand -hex 12)
  # distribution's htpasswd backend only understands bcrypt entries
  htpasswd -Bbn "$TLS_USER" "$tls_password" >"$DIR/tls/htpasswd"
  (umask 077 && printf '%s:%s\n' "$TOKEN_USER" "$token_password" >"$DIR/token/users")

  launch plain http start_plain
  launch tls https start_tls --cacert "$DIR/tls/ca.pem"
  launch token-server http start_token_server
  launch token http start_token

  # Written last and atomically: its existence means "all up".
  cat >"$DIR/env.sh.tmp" <<EOF
# generated by scripts/registries.sh; source me
export AIRGAP_TEST_REGISTRIES_DIR=$(printf %q "$DIR")
export AIRGAP_TEST_REGISTRY_PLAIN=127.0.0.1:${PORTS[plain]}
export AIRGAP_TEST_REGISTRY_TLS=127.0.0.1:${PORTS[tls]}
export AIRGAP_TEST_REGISTRY_TLS_CA=$(printf %q "$DIR/tls/ca.pem")
export AIRGAP_TEST_REGISTRY_TLS_CERT_DIR=$(printf %q "$DIR/tls/certs.d")
export AIRGAP_TEST_REGISTRY_TLS_USER=$TLS_USER
export AIRGAP_TEST_REGISTRY_TLS_PASSWORD=$tls_password
export AIRGAP_TEST_REGISTRY_TOKEN=127.0.0.1:${PORTS[token]}
export AIRGAP_TEST_TOKEN_SERVER=http://127.0.0.1:${PORTS[token-server]}
export AIRGAP_TEST_TOKEN_SERVICE=$TOKEN_SERVICE
export AIRGAP_TEST_REGISTRY_TOKEN_USER=$TOKEN_USER
export AIRGAP_TEST_REGISTRY_TOKEN_PASSWORD=$token_password
EOF
  mv "$DIR/env.sh.tmp" "$DIR/env.sh"
  trap - EXIT
  log "up: plain=${PORTS[plain]} tls=${PORTS[tls]} token=${PORTS[token]} token-server=${PORTS[token-server]}; source $DIR/env.sh"
}

[ $# -eq 2 ] || usage
case "$1" in
  start)
    mkdir -p "$2"
    DIR=$(cd "$2" && pwd)
    cmd_start
    ;;
  stop)
    [ -d "$2" ] || exit 0 # nothing was ever started there
    DIR=$(cd "$2" && pwd)
    stop_all
    ;;
  *) usage ;;
esac
