#!/usr/bin/env bash
# The main job end to end on a fresh machine, in a throwaway directory:
# generated sample images → local store → list / tag → save → load into a second store.
# (Registry pull, signed bundles, verify and push join this script as they land.)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/install-deps.sh
swift build -c release --product airgap-export
swift build -c release --product airgap-import
BIN=$(swift build -c release --show-bin-path)

WORK=$(mktemp -d /tmp/airgap-demo.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
step() { printf '\n== %s\n' "$*"; }

step "generate sample images (three apps sharing a base layer, one two-platform index)"
"$BIN/airgap-export" sample-images -o "$WORK/samples.tar" --multi-arch

step "connected side: load them into the store, list, tag"
export AIRGAP_STORE="$WORK/outside-store"
"$BIN/airgap-export" image load -i "$WORK/samples.tar"
"$BIN/airgap-export" image tag sample/app-1:1.0 localhost:5000/team/app:1
"$BIN/airgap-export" image ls
"$BIN/airgap-export" system df -v

step "save two images into one archive (OCI layout + Docker archive, shared blobs once)"
"$BIN/airgap-export" image save sample/app-1:1.0 sample/app-2:1.0 -o "$WORK/transfer.tar"
ls -l "$WORK/transfer.tar"

step "inside: load the archive into a second store and compare image IDs"
"$BIN/airgap-import" --store "$WORK/inside-store" image load -i "$WORK/transfer.tar"
"$BIN/airgap-import" --store "$WORK/inside-store" image ls
outside=$("$BIN/airgap-export" image ls -q --no-trunc | sort -u)
inside=$("$BIN/airgap-import" --store "$WORK/inside-store" image ls -q --no-trunc | sort -u)
for id in $inside; do grep -q "$id" <<<"$outside" || { echo "demo: image $id differs" >&2; exit 1; }; done

step "skopeo reads the store as an OCI layout"
skopeo inspect "oci:$WORK/inside-store:docker.io/sample/app-1:1.0" | head -5

echo; echo "demo: OK"
