#!/usr/bin/env bash
# deploy/test.sh — the whole test suite, from a fresh Debian machine.
#
#   1. deploy/setup.sh installs what is missing;
#   2. bazel test //... runs every test, including those tagged "netns" that
#      build network namespaces (they need root);
#   3. the unit tests run again under AddressSanitizer + UBSan.
#
# Exits non-zero if anything fails. The last line is "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."

stage() { printf '\n==> [%s] %s\n' "$1" "$2"; }
log_dir=$(mktemp -d /tmp/anylb-test.XXXXXX)

stage 1/3 "installing build and test dependencies"
deploy/setup.sh || exit 1

tag_filter=()
if ((EUID != 0)); then
  echo "test: not root: tests tagged netns (namespaces, XDP) are skipped"
  tag_filter=(--test_tag_filters=-netns)
fi

passed=0
failed=0
# Runs `bazel test` with the given flags, shows Bazel's summary and adds its
# per-test results to the totals.
run_bazel_tests() {
  local name=$1
  shift
  local out="$log_dir/$name.log"
  bazel test --test_summary=short "$@" 2>&1 | tee "$out" |
    grep -E '^//|^Executed|^INFO: Build|^ERROR|^FAILED|^INFO: Elapsed'
  local rc=${PIPESTATUS[0]}
  local p f
  p=$(grep -cE '^//\S+\s+(\(cached\) )?PASSED' "$out")
  f=$(grep -cE '^//\S+\s+(\(cached\) )?(FAILED|TIMEOUT|NO STATUS|INCOMPLETE|FLAKY|FAILED TO BUILD)' "$out")
  passed=$((passed + p))
  failed=$((failed + f))
  if ((rc != 0 && f == 0)); then
    # The build itself failed (or no test ran): count it as one failure.
    echo "test: bazel exited $rc for the $name run; full log: $out"
    failed=$((failed + 1))
  fi
  return "$rc"
}

rc=0
stage 2/3 "bazel test //... (all tests)"
run_bazel_tests all "${tag_filter[@]}" //... || rc=1

stage 3/3 "unit tests under ASan + UBSan"
run_bazel_tests asan --config=asan --test_tag_filters=-netns,-benchmark,-local //... || rc=1

echo
if ((rc != 0)); then
  echo "test: FAILED — logs in $log_dir (per test: bazel-testlogs/<package>/<test>/test.log)"
else
  echo "test: all green"
fi
echo "$passed passed, $failed failed"
exit "$rc"
