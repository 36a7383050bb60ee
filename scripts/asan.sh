#!/usr/bin/env bash
# Builds the package with AddressSanitizer and runs the given test filter (default: the loop and
# transport suites) in a build directory of its own.
#
#   scripts/asan.sh ['MotanLoopTests|MotanTransportTests']
#
# Leak reports from the toolchain's own libraries (Foundation's Process, the test runner) are
# suppressed by scripts/lsan-toolchain.supp; a leak in this package's code still fails the run.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
filter="${1:-MotanLoopTests|MotanTransportTests}"
cd "$root"
swift build --build-tests -Xswiftc -sanitize=address --scratch-path .build-asan
export LSAN_OPTIONS="suppressions=$root/scripts/lsan-toolchain.supp:print_suppressions=0"
# Freed memory sits in a small quarantine only: the memory-bound tests measure RSS.
export ASAN_OPTIONS="detect_leaks=1:quarantine_size_mb=8"
swift test --skip-build --scratch-path .build-asan --no-parallel --filter "$filter"
