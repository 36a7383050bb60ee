#!/usr/bin/env bash
# Builds the MotanCodec libFuzzer harness (Fuzz/FuzzTarget.swift) with address sanitizer and
# runs it for the given number of seconds (default 60), starting from the seeds in Fuzz/corpus.
#
#   scripts/fuzz.sh [SECONDS]
#
# New interesting inputs go to .build-fuzz/corpus (not committed); crashes, leaks and timeouts
# are written to fuzz-artifacts/. Extra libFuzzer flags can be passed in FUZZ_FLAGS.
set -euo pipefail

seconds="${1:-60}"
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/.build-fuzz"
mkdir -p "$out/corpus" "$root/fuzz-artifacts"

flags=(-sanitize=fuzzer,address -O -g -parse-as-library -swift-version 6 -I "$root/Sources/CZlib")

echo "fuzz: building MotanCodec with -sanitize=fuzzer,address"
swiftc "${flags[@]}" -module-name MotanCodec -emit-library -static -emit-module \
    -emit-module-path "$out/MotanCodec.swiftmodule" -o "$out/libMotanCodec.a" \
    "$root"/Sources/MotanCodec/*.swift
swiftc "${flags[@]}" -I "$out" -L "$out" -lMotanCodec -lz \
    -o "$out/motan-codec-fuzz" "$root/Fuzz/FuzzTarget.swift"

echo "fuzz: running for ${seconds}s"
# The Swift backtracer trips over ASan after a fatalError; the sanitizer report is enough.
export SWIFT_BACKTRACE=enable=no
# shellcheck disable=SC2086
"$out/motan-codec-fuzz" "$out/corpus" "$root/Fuzz/corpus" \
    -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
    -artifact_prefix="$root/fuzz-artifacts/" -print_final_stats=1 ${FUZZ_FLAGS:-}
