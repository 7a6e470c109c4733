#!/usr/bin/env bash
# tests/e2e/modes_test.sh — issue 9, every forwarding mode once end to end
# through the router: `lab.sh service MODE` for tun, dr, nat and fullnat,
# then 4 client addresses x 50 new connections (GET /id) through the VIP.
# Each mode: every request answered (200), every real server answers some.
#   nat: one director (lab.sh stops lbnode on dir2, dir3; the real servers
#     route the clients via dir1), whose steering program sees the replies
#     (steer_nat_reply, at least one frame per connection).
#   fullnat: the router learns each director's local-address /28 by BGP;
#     the real servers see local addresses as the client source (nginx's
#     access log), from the pools of more than one director, and more than
#     one director's steering program received replies to its local
#     addresses (anylb_steer_packets_total{decision="steer_local"}), each
#     at least one per flow it made.
# Prints the figures (grep FIGURE). Needs root.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "${TEST_SRCDIR:?run it with bazel test}/anylb/tests/e2e/lib.sh"
e2e_init e2emodes

N=50 # GETs per client address and mode

# steer COUNTER: "dirN <value>" of the steering counter on each answering
# director.
steer() {
  local d v
  for d in "${DIRECTORS[@]}"; do
    v=$(metrics "$d" | awk -v c="$1" '$1 == "anylb_steer_packets_total{decision=\"" c "\"}" { printf "%d\n", $2 }')
    [[ -n $v ]] && echo "$d $v"
  done
  return 0
}

# pool_of ADDRESS: the director whose FULLNAT pool holds ADDRESS (lab.sh:
# dir1 192.0.2.64/28, dir2 .80/28, dir3 .96/28), else "other".
pool_of() {
  awk -F. '{ n = $4 + 0; d = int((n - 48) / 16);
             if ($1"."$2"."$3 == "192.0.2" && d >= 1 && d <= 3) print "dir" d; else print "other" }' <<<"$1"
}

# access_lines: lines of every real server's nginx access log so far.
access_lines() {
  local r
  for r in "${REAL_SERVERS[@]}"; do wc -l <"$dir/logs/$r-nginx-access.log"; done | paste -sd' '
}

# new_sources BEFORE: "<rsN> <client source>" of the requests for /id logged
# since BEFORE (access_lines).
new_sources() {
  local -a before
  read -r -a before <<<"$1"
  local i=0 r
  for r in "${REAL_SERVERS[@]}"; do
    tail -n +"$((before[i] + 1))" "$dir/logs/$r-nginx-access.log" |
      awk -v r="$r" '$3 ~ /^\/id/ { print r, $1 }'
    i=$((i + 1))
  done
}

say "lab up"
lab up

for mode in tun dr nat fullnat; do
  say "service $mode"
  lab service "$mode"
  # Warm up (neighbours, fast path), then measure.
  lab traffic 5 >/dev/null
  settle
  flows_now >"$tmp/f0"
  steer steer_local >"$tmp/l0"
  steer steer_nat_reply >"$tmp/n0"
  before=$(access_lines)
  lab traffic "$N" >"$tmp/t"
  settle
  flows_now >"$tmp/f1"
  steer steer_local >"$tmp/l1"
  steer steer_nat_reply >"$tmp/n1"

  total=$(wc -l <"$tmp/t")
  bad=$(failed "$tmp/t")
  figure "$mode: requests $total, failed $bad"
  flows_delta "$tmp/f0" "$tmp/f1" >"$tmp/dirs"
  while read -r d n; do figure "$mode: director $d: $n new flows"; done <"$tmp/dirs"
  per_server "$tmp/t" >"$tmp/servers"
  while read -r r n; do figure "$mode: real server $r: $n requests"; done <"$tmp/servers"

  want=$((N * ${#CLIENT_ADDRS[@]}))
  ((total == want)) || fail "$mode: lab traffic made $total requests, want $want"
  ((bad == 0)) || fail "$mode: $bad of $total requests failed: $(awk '$2 != 200' "$tmp/t" | sort | uniq -c | head -5)"
  awk '$2 == 0 { print; bad = 1 } END { exit bad }' "$tmp/servers" >&2 ||
    fail "$mode: a real server answered no request"

  new_sources "$before" >"$tmp/sources"
  case $mode in
    nat)
      # Only dir1 forwards, and the replies came back through it.
      busy=$(awk '$2 > 0' "$tmp/dirs" | wc -l)
      replies=$(join "$tmp/n0" "$tmp/n1" | awk '$1 == "dir1" { print $3 - $2 }')
      figure "nat: directors with new flows: $busy; replies steered on dir1: ${replies:-none}"
      ((busy == 1)) && awk '$1 == "dir1" && $2 > 0 { ok = 1 } END { exit !ok }' "$tmp/dirs" ||
        fail "nat: new flows on other directors than dir1 alone: $(tr '\n' ' ' <"$tmp/dirs")"
      # Every connection has replies (SYN-ACK, data, FIN): at least one each.
      ((${replies:-0} >= want)) || fail "nat: dir1's steering program saw ${replies:-0} replies from the NAT real servers for $want connections"
      # NAT keeps the client's address as the source.
      awk '$2 !~ /^203\.0\.113\./ { print; bad = 1 } END { exit bad }' "$tmp/sources" >&2 ||
        fail "nat: a real server saw a source other than a client address"
      ;;
    fullnat)
      for d in "${DIRECTORS[@]}"; do
        route=$(lab exec router ip route show "192.0.2.$((48 + 16 * ${d#dir}))/28")
        figure "fullnat: router: ${route:-no route}"
        [[ $route == *"via 198.51.100.1${d#dir}"* ]] || fail "fullnat: the router's route to $d's local addresses is \"$route\""
      done
      : >"$tmp/pools"
      while read -r _ src; do pool_of "$src"; done <"$tmp/sources" | sort | uniq -c | awk '{ print $2, $1 }' >"$tmp/pools"
      while read -r p n; do figure "fullnat: real servers saw $n requests from local addresses of $p"; done <"$tmp/pools"
      join "$tmp/l0" "$tmp/l1" | awk '{ print $1, $3 - $2 }' >"$tmp/local"
      while read -r d n; do figure "fullnat: director $d: $n packets to its local addresses (steer_local)"; done <"$tmp/local"
      grep -q '^other ' "$tmp/pools" && fail "fullnat: a real server saw a source outside the directors' pools: $(grep -v '^dir' "$tmp/pools")"
      seen=$(awk '{ s += $2 } END { print s + 0 }' "$tmp/pools")
      ((seen >= want)) || fail "fullnat: the real servers logged $seen requests for /id, want >= $want"
      ((($(wc -l <"$tmp/pools")) >= 2)) || fail "fullnat: the real servers saw local addresses of one director only"
      ((($(awk '$2 > 0' "$tmp/local" | wc -l)) >= 2)) ||
        fail "fullnat: replies reached fewer than two directors: $(tr '\n' ' ' <"$tmp/local")"
      # Each director got replies for every flow it made (at least one
      # frame each: the SYN-ACK).
      join "$tmp/dirs" "$tmp/local" | awk '$3 < $2 { print; bad = 1 } END { exit bad }' >&2 ||
        fail "fullnat: a director received fewer replies than the flows it made (director flows replies above)"
      ;;
    *)
      # TUN/DR: the real server sees the client itself.
      awk '$2 !~ /^203\.0\.113\./ { print; bad = 1 } END { exit bad }' "$tmp/sources" >&2 ||
        fail "$mode: a real server saw a source other than a client address"
      ((($(awk '$2 > 0' "$tmp/dirs" | wc -l)) >= 2)) ||
        fail "$mode: fewer than two directors had new flows: $(tr '\n' ' ' <"$tmp/dirs")"
      ;;
  esac
done

say "PASS: tun, dr, nat and fullnat through the router"
