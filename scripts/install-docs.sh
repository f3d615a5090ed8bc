#!/usr/bin/env bash
# Installs the two executables, their man pages (generated from the commands' own --help by
# swift-argument-parser's generate-manual) and bash, zsh and fish completions under PREFIX.
#   PREFIX=/usr/local scripts/install-docs.sh          (CONFIG=debug to use a debug build)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PREFIX=${PREFIX:-/usr/local}
CONFIG=${CONFIG:-release}

swift build -c "$CONFIG" --product airgap-export
swift build -c "$CONFIG" --product airgap-import
swift build -c "$CONFIG" --product generate-manual
BIN=$(swift build -c "$CONFIG" --show-bin-path)

install -d "$PREFIX/bin" "$PREFIX/share/man/man1" "$PREFIX/share/bash-completion/completions" \
  "$PREFIX/share/zsh/site-functions" "$PREFIX/share/fish/vendor_completions.d"
for tool in airgap-export airgap-import; do
  install -m 0755 "$BIN/$tool" "$PREFIX/bin/$tool"
  # One page per command (airgap-import.image.list.1), dated by the commit, not the clock.
  date=$(git log -1 --format=%cs 2>/dev/null || echo 1970-01-01)
  "$BIN/generate-manual" "$BIN/$tool" --multi-page --date "$date" --authors "airgap" -o "$PREFIX/share/man/man1"
  "$BIN/$tool" --generate-completion-script bash > "$PREFIX/share/bash-completion/completions/$tool"
  "$BIN/$tool" --generate-completion-script zsh > "$PREFIX/share/zsh/site-functions/_$tool"
  "$BIN/$tool" --generate-completion-script fish > "$PREFIX/share/fish/vendor_completions.d/$tool.fish"
done
# The pages for the hidden helper commands are not for users.
rm -f "$PREFIX"/share/man/man1/*.help.1 "$PREFIX"/share/man/man1/*.sample-images.1
echo "installed under $PREFIX: bin/, share/man/man1/ ($(ls "$PREFIX/share/man/man1" | wc -l) pages), completions for bash, zsh and fish"
