#!/usr/bin/env bash
# tests/e2e/wcmp_test.sh — issue 9, WCMP: node weights 1:1:2 (`lbctl
# node-weight`, announced as the BGP link-bandwidth community) make the
# router weight its multipath route, and the third director carries about
# half of 1,000 new TCP connections (50% +- 10 points; the others about a
# quarter each). Prints the router's next-hop weights and the shares.
# Needs root.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "${TEST_SRCDIR:?run it with bazel test}/anylb/tests/e2e/lib.sh"
e2e_init e2ewcmp

# hop_weight DIR: the weight of DIR's next hop in the router's route.
hop_weight() {
  lab route | awk -v a="198.51.100.1${1#dir}" '$1 == "nexthop" && $3 == a {
    w = 1; for (i = 1; i < NF; i++) if ($i == "weight") w = $(i + 1); print w }'
}

# weights_ok: w1, w2, w3 (the next hops' weights) are 1:1:2.
weights_ok() { [[ -n $w1 && -n $w2 && -n $w3 ]] && ((w1 == w2 && w3 == 2 * w1)); }

say "lab up, service tun"
lab up
lab service tun
wait_hops 3 30

say "node weights dir1 1, dir2 1, dir3 2"
lab lbctl node-weight dir1 1
lab lbctl node-weight dir2 1
lab lbctl node-weight dir3 2
start=$(date +%s.%N)
for ((i = 0; i < 300; i++)); do
  w1=$(hop_weight dir1) w2=$(hop_weight dir2) w3=$(hop_weight dir3)
  weights_ok && break
  sleep 0.1
done
lab route | sed 's/^/  /'
weights_ok ||
  fail "the router's next-hop weights are dir1 ${w1:-?}, dir2 ${w2:-?}, dir3 ${w3:-?} after 30s, want 1:1:2"
figure "router next-hop weights: dir1 $w1, dir2 $w2, dir3 $w3 ($(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }') s after node-weight)"

lab traffic 10 >/dev/null
settle
flows_now >"$tmp/f0"
say "1000 new connections: 4 client addresses x 250 GETs of /id"
lab traffic 250 >"$tmp/t"
settle
flows_now >"$tmp/f1"
bad=$(failed "$tmp/t")
figure "requests: $(wc -l <"$tmp/t"), failed: $bad"
flows_delta "$tmp/f0" "$tmp/f1" | shares /dev/stdin >"$tmp/dirs"
while read -r d n p; do figure "director $d: $n new flows ($p%)"; done <"$tmp/dirs"
((bad == 0)) || fail "$bad of 1000 requests failed"
[[ $(wc -l <"$tmp/dirs") -eq 3 ]] || fail "new flows known for $(wc -l <"$tmp/dirs") of 3 directors"
awk '$1 == "dir3" { found = 1; if ($3 < 40 || $3 > 60) bad = 1 } END { exit !found || bad }' "$tmp/dirs" ||
  fail "dir3 (weight 2 of 4) carries $(awk '$1 == "dir3" { print $3 }' "$tmp/dirs")% of the new connections, want 50 +- 10"
echo "PASS: node weights 1:1:2 give the third director about half the new connections"
