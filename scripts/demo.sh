#!/usr/bin/env bash
# The main job end to end on a fresh machine, everything throwaway and on 127.0.0.1:
#   a local registry with sample images → signed bundle → verify → load → push to an "internal" registry
#   → the bundle served in place as a read-only registry, pulled by podman by the original name
#   → a git build context carried with its base image, built inside by buildah with the outside registry gone.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/install-deps.sh
swift build -c release --product airgap-export
swift build -c release --product airgap-import
BIN=$(swift build -c release --show-bin-path)
EXPORT="$BIN/airgap-export"
IMPORT="$BIN/airgap-import"

WORK=$(mktemp -d /tmp/airgap-demo.XXXXXX)
SERVE_PID=''
cleanup() {
  [ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null || true
  scripts/registries.sh stop "$WORK/registries" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }

step "start throwaway registries on 127.0.0.1 (the 'outside' one and the 'internal' one)"
scripts/registries.sh start "$WORK/registries"
# shellcheck disable=SC1091
source "$WORK/registries/env.sh"
OUTSIDE=$AIRGAP_TEST_REGISTRY_PLAIN
INTERNAL=$AIRGAP_TEST_REGISTRY_TOKEN
export DOCKER_CONFIG="$WORK/docker-config"

step "connected side: put sample images (three apps sharing a base layer, one two-platform index) into $OUTSIDE"
"$EXPORT" sample-images -o "$WORK/samples.tar" --multi-arch >/dev/null
"$EXPORT" --store "$WORK/staging" image load -i "$WORK/samples.tar"
for name in app-1 app-2 app-3 app-multi; do
  "$EXPORT" --store "$WORK/staging" image push -q "sample/$name:1.0" "$OUTSIDE/sample/$name:1.0"
done

step "connected side: a git repository to build inside (a tag v1, a subfolder, a secret .dockerignore leaves out)"
mkdir -p "$WORK/app-repo/web/site"
cat > "$WORK/app-repo/web/Dockerfile" <<DOCKERFILE
ARG BASE=$OUTSIDE/sample/app-1:1.0
FROM \$BASE
COPY . /srv/web/
DOCKERFILE
echo '<h1>built inside</h1>' > "$WORK/app-repo/web/site/index.html"
echo 'API_TOKEN=do-not-ship' > "$WORK/app-repo/web/secrets.env"
echo 'secrets.env' > "$WORK/app-repo/web/.dockerignore"
git -C "$WORK/app-repo" init -q -b main
git -C "$WORK/app-repo" add -A
git -C "$WORK/app-repo" -c user.email=demo@example -c user.name=demo commit -qm 'web v1'
git -C "$WORK/app-repo" tag v1

step "connected side: a manifest, a signing key, and the signed bundle"
cat > "$WORK/images.yaml" <<YAML
apiVersion: airgap/v1
kind: ImageSet
platforms: [linux/amd64]
images:
  - $OUTSIDE/sample/app-1:1.0
  - $OUTSIDE/sample/app-2:1.0
  - $OUTSIDE/sample/app-3:1.0
  - ref: $OUTSIDE/sample/app-multi:1.0
    platforms: all
contexts:
  - source: file://$WORK/app-repo#v1:web
    tag: internal/web:1.0
YAML
cat "$WORK/images.yaml"
"$EXPORT" keygen --output-prefix "$WORK/site"
"$EXPORT" --store "$WORK/outside-store" bundle -f "$WORK/images.yaml" -o "$WORK/bundle.tar" --key "$WORK/site.key"

step "carry bundle.tar inside; pin the signer once (compare the fingerprint out of band), verify with the stock tools too"
"$IMPORT" --store "$WORK/inside-store" trust add "$WORK/site.pub"
"$IMPORT" --store "$WORK/inside-store" verify "$WORK/bundle.tar"
mkdir "$WORK/x" && tar xf "$WORK/bundle.tar" -C "$WORK/x" airgap
openssl pkeyutl -verify -pubin -inkey "$WORK/site.pub" -rawin -in "$WORK/x/airgap/SHA256SUMS" -sigfile "$WORK/x/airgap/SHA256SUMS.sig"

step "the media were tampered with on the way: one byte of a layer changed; nothing is loaded"
cp "$WORK/bundle.tar" "$WORK/tampered.tar"
size=$(stat -c %s "$WORK/tampered.tar")
printf 'X' | dd of="$WORK/tampered.tar" bs=1 seek=$((size - 4096)) conv=notrunc status=none
if "$IMPORT" --store "$WORK/inside-store" load "$WORK/tampered.tar"; then echo "demo: a tampered bundle loaded" >&2; exit 1; fi

step "inside: load into the local store"
"$IMPORT" --store "$WORK/inside-store" load "$WORK/bundle.tar"
"$IMPORT" --store "$WORK/inside-store" image ls

step "inside: push to the internal registry (token auth) under the prefix 'mirror'"
printf '%s' "$AIRGAP_TEST_REGISTRY_TOKEN_PASSWORD" | "$IMPORT" login -u "$AIRGAP_TEST_REGISTRY_TOKEN_USER" --password-stdin "$INTERNAL"
"$IMPORT" push "$WORK/bundle.tar" --key "$WORK/site.pub" --to "$INTERNAL/mirror"

step "the internal registry serves the same digests as the outside one"
for name in app-1 app-multi; do
  a=$(skopeo inspect --raw --tls-verify=false "docker://$OUTSIDE/sample/$name:1.0" | sha256sum | cut -d' ' -f1)
  b=$(skopeo inspect --raw --tls-verify=false "docker://$INTERNAL/mirror/sample/$name:1.0" | sha256sum | cut -d' ' -f1)
  echo "$name: outside sha256:$a inside sha256:$b"
  [ "$a" = "$b" ] || { echo "demo: digests differ for $name" >&2; exit 1; }
done

step "inside: copy one image out of the verified bundle into an OCI archive any tool reads (the copy engine)"
"$IMPORT" --store "$WORK/inside-store" copy -q "bundle:$WORK/bundle.tar" --key "$WORK/site.pub" --platform linux/arm64/v8 "oci:$WORK/layout"
"$IMPORT" copy -q "oci:$WORK/layout:$OUTSIDE/sample/app-1:1.0" "oci-archive:$WORK/app-1.tar:$OUTSIDE/sample/app-1:1.0" >/dev/null
skopeo inspect --raw "oci-archive:$WORK/app-1.tar:$OUTSIDE/sample/app-1:1.0" | sha256sum | sed 's/^/app-1 in the archive: sha256:/; s/  -$//'
echo "and the archive, read in place (no temporary copy), on to the internal registry:"
"$IMPORT" copy -q "oci-archive:$WORK/app-1.tar" "docker://$INTERNAL/mirror/from-archive/app-1:1.0"

step "inside: load the bundle into podman (the engine gets an archive of verified blobs, the names only after the whole bundle checked out)"
printf '[storage]\ndriver = "vfs"\ngraphroot = "%s"\nrunroot = "%s"\n' "$WORK/podman-load/storage" "$WORK/podman-load/run" >"$WORK/storage.conf"
printf '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "none"\n' >"$WORK/containers.conf"
if CONTAINERS_STORAGE_CONF="$WORK/storage.conf" CONTAINERS_CONF="$WORK/containers.conf" \
  "$IMPORT" --store "$WORK/inside-store" load "$WORK/tampered.tar" --key "$WORK/site.pub" --into podman --progress none 2>/dev/null; then
  echo "demo: a tampered bundle loaded into podman" >&2; exit 1
fi
CONTAINERS_STORAGE_CONF="$WORK/storage.conf" CONTAINERS_CONF="$WORK/containers.conf" \
  "$IMPORT" --store "$WORK/inside-store" load "$WORK/bundle.tar" --key "$WORK/site.pub" --into podman -q

step "inside, no registry at hand: serve the verified bundle in place as a read-only registry"
"$IMPORT" --store "$WORK/inside-store" serve "$WORK/bundle.tar" --listen 127.0.0.1:0 \
  --mirror-config "$WORK/mirror" --log "$WORK/access.log" >"$WORK/serve.out" &
SERVE_PID=$!
for _ in $(seq 100); do grep -q '^Listening on' "$WORK/serve.out" && break; sleep 0.1; done
cat "$WORK/serve.out"
SERVED=$(sed -n 's|^Listening on http://||p' "$WORK/serve.out")
[ -n "$SERVED" ] || { echo "demo: serve did not start" >&2; exit 1; }
a=$(skopeo inspect --raw --tls-verify=false "docker://$OUTSIDE/sample/app-multi:1.0" | sha256sum | cut -d' ' -f1)
b=$(skopeo inspect --raw --tls-verify=false "docker://$SERVED/sample/app-multi:1.0" | sha256sum | cut -d' ' -f1)
echo "app-multi: outside sha256:$a served sha256:$b"
[ "$a" = "$b" ] || { echo "demo: the served digest differs" >&2; exit 1; }
echo "podman pulls the image by its original name, answered by the mirror (registries.conf written by serve):"
CONTAINERS_REGISTRIES_CONF="$WORK/mirror/containers/registries.conf" podman --root "$WORK/podman/storage" --runroot "$WORK/podman/run" \
  --storage-driver vfs --events-backend none --cgroup-manager cgroupfs pull -q "$OUTSIDE/sample/app-2:1.0"
grep "/sample/app-2/manifests/1.0" "$WORK/access.log" | tail -1
kill -TERM "$SERVE_PID" && wait "$SERVE_PID" && SERVE_PID=''

step "inside: the checksum audit report for the auditors (a page for people; json and csv for tools); the tampered copy's names the damaged entry and what it breaks"
"$IMPORT" audit "$WORK/bundle.tar" --key "$WORK/site.pub" --format html -o "$WORK/audit.html"
"$IMPORT" audit "$WORK/tampered.tar" --key "$WORK/site.pub" --format text --progress none 2>/dev/null | grep -E '^(airgap checksum audit|Broken images)|does not match' || true

step "inside: build the carried context with buildah; the outside registry is stopped first"
kill "$(cat "$WORK/registries/pids/plain.pid")"
"$IMPORT" --store "$WORK/inside-store" context ls "$WORK/bundle.tar"
export CONTAINERS_STORAGE_CONF="$WORK/storage.conf" BUILDAH_ISOLATION=chroot
printf '[storage]\ndriver = "vfs"\ngraphroot = "%s"\nrunroot = "%s"\n' "$WORK/buildah/storage" "$WORK/buildah/run" > "$CONTAINERS_STORAGE_CONF"
"$IMPORT" --store "$WORK/inside-store" build internal/web:1.0 "$WORK/bundle.tar" --serve-log "$WORK/build-serve.log"
c=$(buildah from -q internal/web:1.0); m=$(buildah mount "$c")
echo "in the built image: /srv/web/site/index.html = $(cat "$m/srv/web/site/index.html"); secrets.env: $( [ -e "$m/srv/web/secrets.env" ] && echo SHIPPED || echo 'left out by .dockerignore')"
[ ! -e "$m/srv/web/secrets.env" ] || { echo "demo: the secret was shipped" >&2; exit 1; }
grep -c 'manifests/sha256:' "$WORK/build-serve.log" | sed 's/^/base manifests buildah pulled by digest from the loopback serve: /'
buildah umount "$c" >/dev/null; buildah rm "$c" >/dev/null; buildah rmi -a -f >/dev/null

echo; echo "demo: OK"
