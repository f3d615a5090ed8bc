#!/usr/bin/env bash
# libFuzzer runs of airgap's parsers (fuzz/: reference, manifest/index/config, export manifest
# YAML, bundle reader, canonical tar reader against libarchive), built with --sanitize=fuzzer,address in fuzz/.build.
#
#   scripts/fuzz.sh                        # the short bounded run the test command does (FUZZ_SECONDS=15 per target)
#   FUZZ_SECONDS=1800 scripts/fuzz.sh      # a longer run; FUZZ_TARGETS="BundleReader" picks targets
#
# Every file under fuzz/regressions/TARGET/ (inputs that once crashed) is replayed first. The
# committed seeds in fuzz/corpus/ are read, never written: new corpus goes to a temp dir (or to
# FUZZ_CORPUS_DIR/TARGET to keep it). A crash leaves its input in fuzz/crash-*; copy it into
# fuzz/regressions/TARGET/ once fixed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz"

SECONDS_PER_TARGET=${FUZZ_SECONDS:-15}
TARGETS=${FUZZ_TARGETS:-"Reference Manifest ImageSet BundleReader CanonicalTar"}
declare -A CORPUS=([Reference]=reference [Manifest]=manifest [ImageSet]=imageset [BundleReader]=bundle [CanonicalTar]=canonical-tar)
declare -A MAX_LEN=([Reference]=512 [Manifest]=16384 [ImageSet]=8192 [BundleReader]=65536 [CanonicalTar]=16384)

# --sanitize=fuzzer alone links libFuzzer but leaves Swift code uninstrumented (SwiftPM passes it
# only to the link); -Xswiftc -sanitize=fuzzer adds the coverage counters libFuzzer steers by.
WORK=$(mktemp -d /tmp/airgap-fuzz.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
# (gold warns once per ASan helper symbol; those lines are noise and are left out of the output.)
if ! swift build --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer >"$WORK/build.log" 2>&1; then
  grep -v "ld.gold: warning: Cannot export local symbol" "$WORK/build.log" | tail -40 >&2
  echo "fuzz: build failed" >&2
  exit 1
fi
grep -v "ld.gold: warning: Cannot export local symbol" "$WORK/build.log" | tail -1
for target in $TARGETS; do
  name=${CORPUS[$target]:?unknown fuzz target $target (known: ${!CORPUS[*]})}
  binary=.build/debug/Fuzz$target
  if [ -d "regressions/$name" ] && [ -n "$(ls -A "regressions/$name")" ]; then
    echo "fuzz: $target: replaying regressions/$name"
    "$binary" -runs=1 regressions/"$name"/* >"$WORK/$target.replay.log" 2>&1 || {
      tail -40 "$WORK/$target.replay.log" >&2; echo "fuzz: $target: a recorded regression crashes again" >&2; exit 1; }
  fi
  out=${FUZZ_CORPUS_DIR:+$FUZZ_CORPUS_DIR/$name}
  out=${out:-$WORK/$name}
  mkdir -p "$out"
  echo "fuzz: $target: ${SECONDS_PER_TARGET}s from corpus/$name"
  if ! "$binary" -max_total_time="$SECONDS_PER_TARGET" -max_len="${MAX_LEN[$target]}" -rss_limit_mb=2048 \
      -timeout=10 -print_final_stats=1 "$out" "corpus/$name" >"$WORK/$target.log" 2>&1; then
    tail -60 "$WORK/$target.log" >&2
    echo "fuzz: $target found a crash; its input is in fuzz/crash-* (or leak-/timeout-/oom-)" >&2
    exit 1
  fi
  grep -E "^(Done|stat::number_of_executed_units|stat::peak_rss_mb)" "$WORK/$target.log" | tr '\n' ' ' | sed "s/^/fuzz: $target: /"; echo
done
