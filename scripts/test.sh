#!/usr/bin/env bash
# The test command: installs what the tests need, builds, starts throwaway registries on
# 127.0.0.1 (plain, TLS + htpasswd, Bearer token), runs every test, and stops what it started.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/install-deps.sh
swift build --build-tests

REGISTRIES=$(mktemp -d /tmp/airgap-test-registries.XXXXXX)
cleanup() { scripts/registries.sh stop "$REGISTRIES" || true; rm -rf "$REGISTRIES"; }
trap cleanup EXIT
scripts/registries.sh start "$REGISTRIES"
# shellcheck disable=SC1091
source "$REGISTRIES/env.sh"
export AIRGAP_TEST_REGISTRY_PLAIN AIRGAP_TEST_REGISTRY_TLS AIRGAP_TEST_REGISTRY_TLS_CA AIRGAP_TEST_REGISTRY_TLS_CERT_DIR AIRGAP_TEST_REGISTRY_TLS_USER \
  AIRGAP_TEST_REGISTRY_TLS_PASSWORD AIRGAP_TEST_REGISTRY_TOKEN AIRGAP_TEST_TOKEN_SERVER AIRGAP_TEST_REGISTRY_TOKEN_USER \
  AIRGAP_TEST_REGISTRY_TOKEN_PASSWORD
# Tests that need the registries fail (not skip) when these are missing under the test command.
export AIRGAP_REQUIRE_REGISTRIES=1

swift test --skip-build "$@"

# Man pages and completions install, every page shows examples, and the completion scripts parse.
if [ $# -eq 0 ]; then
  DOCS=$(mktemp -d /tmp/airgap-docs.XXXXXX)
  PREFIX="$DOCS" CONFIG=debug scripts/install-docs.sh
  for page in "$DOCS"/share/man/man1/*.1; do
    grep -q "Examples:" "$page" || { echo "the man page $page has no examples" >&2; exit 1; }
  done
  for tool in airgap-export airgap-import; do
    bash -n "$DOCS/share/bash-completion/completions/$tool"
    if command -v zsh >/dev/null; then zsh -n "$DOCS/share/zsh/site-functions/_$tool"; fi
    "$DOCS/bin/$tool" --help | grep -q "Examples:"
  done
  rm -rf "$DOCS"
fi

# A short bounded libFuzzer run of every parser (longer runs: see scripts/fuzz.sh). Skipped when
# the caller picks tests with arguments, or with AIRGAP_SKIP_FUZZ=1.
if [ $# -eq 0 ] && [ "${AIRGAP_SKIP_FUZZ:-0}" != 1 ]; then
  scripts/fuzz.sh
fi
