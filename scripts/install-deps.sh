#!/usr/bin/env bash
# Installs the Debian packages that airgap's build and integration tests need.
# Idempotent: when every package is already installed it never touches apt,
# so it is cheap to call at the start of every CI run.
set -euo pipefail

packages=(
  # C libraries the Swift targets link against
  libarchive-dev libzstd-dev libssl-dev pkg-config
  # image tooling used to build fixtures and cross-check our output (oci-image-tool validates the
  # store as a layout; containers/image's test fixtures come from its -dev package)
  skopeo umoci podman buildah oci-image-tool golang-github-containers-image-dev zstd curl
  # engines the tests load bundles into (dockerd runs with vfs storage and no iptables)
  docker.io containerd
  # real registries for integration tests (CNCF distribution 2.8)
  docker-registry apache2-utils openssl
  # scripts/token-server.py and scripts/cosign-fixture.py run on Debian's /usr/bin/python3
  python3-jwt python3-cryptography
  # GPG simple signing (skopeo --sign-by) for the signature tests
  gnupg
  # build contexts: git fetches them; busybox-static is the shell of the test base images a RUN needs
  git busybox-static
  # other tar readers for the differential tests: Go's archive/tar (as in docker, podman, skopeo, ctr) and bsdtar
  golang-go libarchive-tools
  # progress is checked in a real terminal (tmux); the audit page is laid out by headless Chromium
  tmux chromium
)

missing=()
for pkg in "${packages[@]}"; do
  # dpkg -s also succeeds for removed-but-configured packages, so read Status.
  # sed consumes all of dpkg's output: `grep -q` would quit early and the
  # resulting SIGPIPE would, under pipefail, misreport the package as missing.
  if [ "$(dpkg -s "$pkg" 2>/dev/null | sed -n 's/^Status: //p')" != "install ok installed" ]; then
    missing+=("$pkg")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"

# Fresh machines may run this as root without sudo installed.
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  SUDO=(sudo)
fi

export DEBIAN_FRONTEND=noninteractive
# The package lists may be stale or empty on a new machine; one update suffices.
"${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 update
# Only the missing ones: naming installed packages would upgrade them as a side effect.
"${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 install -y "${missing[@]}"

# Fail loudly here rather than in a confusing test later.
for cmd in docker-registry htpasswd openssl skopeo umoci podman curl zstd pkg-config dockerd ctr go bsdtar gpg; do
  command -v "$cmd" >/dev/null || { echo "install-deps: $cmd still missing" >&2; exit 1; }
done
/usr/bin/python3 -c 'import jwt, cryptography' ||
  { echo "install-deps: python3-jwt/cryptography not importable by /usr/bin/python3" >&2; exit 1; }
echo "install-deps: done"
