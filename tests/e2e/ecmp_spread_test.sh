#!/usr/bin/env bash
# tests/e2e/ecmp_spread_test.sh — issue 9, ECMP: 1,000 new TCP connections
# (4 client addresses x 250, each from a new source port) through the
# router's multipath route spread over all three directors (each >= 15% of
# the new flows their lbnodes scheduled) and all four real servers (each >=
# 15% of the answers to GET /id). Prints the shares. Needs root.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "${TEST_SRCDIR:?run it with bazel test}/anylb/tests/e2e/lib.sh"
e2e_init e2eecmp

say "lab up, service tun"
lab up
lab service tun
wait_hops 3 30

# The first flows of each director resolve neighbours and warm the fast path.
lab traffic 10 >/dev/null
settle
flows_now >"$tmp/f0"
say "1000 new connections: 4 client addresses x 250 GETs of /id"
lab traffic 250 >"$tmp/t"
settle
flows_now >"$tmp/f1"

total=$(wc -l <"$tmp/t")
bad=$(failed "$tmp/t")
figure "requests: $total, failed: $bad"
flows_delta "$tmp/f0" "$tmp/f1" | shares /dev/stdin >"$tmp/dirs"
per_server "$tmp/t" | shares /dev/stdin >"$tmp/servers"
while read -r d n p; do figure "director $d: $n new flows ($p%)"; done <"$tmp/dirs"
while read -r r n p; do figure "real server $r: $n requests ($p%)"; done <"$tmp/servers"

((total == 1000)) || fail "lab traffic made $total requests, want 1000"
((bad == 0)) || fail "$bad of 1000 requests failed: $(awk '$2 != 200' "$tmp/t" | sort | uniq -c | head -5)"
[[ $(wc -l <"$tmp/dirs") -eq 3 ]] || fail "new flows known for $(wc -l <"$tmp/dirs") of 3 directors"
dir_flows=$(awk '{ s += $2 } END { print s + 0 }' "$tmp/dirs")
# Every connection is one new flow on exactly one director.
((dir_flows >= 1000)) || fail "the directors scheduled $dir_flows new flows for 1000 connections"
awk '$3 < 15 { print; bad = 1 } END { exit bad }' "$tmp/dirs" >&2 ||
  fail "a director carries less than 15% of the new connections (above)"
awk '$3 < 15 { print; bad = 1 } END { exit bad }' "$tmp/servers" >&2 ||
  fail "a real server answers less than 15% of the requests (above)"
echo "PASS: ECMP spreads 1000 connections over 3 directors and 4 real servers"
