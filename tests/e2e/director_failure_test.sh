#!/usr/bin/env bash
# tests/e2e/director_failure_test.sh — issue 9, director failure: 24 slow
# downloads (GET /big, 1 MiB at 256 KiB/s, ~4 s each) established through
# all three directors; kill -9 the lbnode carrying most of them; the router
# drops its route (BFD/BGP) and rehashes its flows onto the survivors, which
# pick the same real servers (Maglev, same table) without any shared state:
# every download finishes with the right sha256. Once in TUN, once in DR
# (the killed lbnode is started again in between). Prints the downloads per
# director, the broken ones, how long the router took to drop the director,
# and how new connections fared meanwhile. Needs root.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "${TEST_SRCDIR:?run it with bazel test}/anylb/tests/e2e/lib.sh"
e2e_init e2edirf

DOWNLOADS=24

say "lab up"
lab up
want=$(big_sha)

# run_mode MODE: one kill during the downloads, with the service in MODE.
run_mode() {
  local mode=$1 d victim="" most=-1 n killed gone intact broken i
  say "$mode: service, every director up"
  lab service "$mode"
  wait_hops 3 30
  lab traffic 10 >/dev/null
  settle
  flows_now >"$tmp/$mode.f0"
  start_downloads "$DOWNLOADS" "$tmp/$mode.dl"
  sleep 1
  flows_now >"$tmp/$mode.f1"
  flows_delta "$tmp/$mode.f0" "$tmp/$mode.f1" >"$tmp/$mode.dirs"
  while read -r d n; do
    figure "$mode: director $d carries $n of the $DOWNLOADS downloads"
    ((n > 0)) || fail "$mode: no download goes through $d (the router's hash spread 24 connections over fewer than 3 directors)"
    if ((n > most)); then most=$n victim=$d; fi
  done <"$tmp/$mode.dirs"
  [[ $(wc -l <"$tmp/$mode.dirs") -eq 3 ]] || fail "$mode: new flows known for fewer than 3 directors"

  # New connections during the failure, 50/s from each client address.
  lab traffic 150 50/s >"$tmp/$mode.t" &
  local traffic=$!
  sleep 0.5
  say "$mode: kill -9 lbnode on $victim ($most downloads through it)"
  lab kill-lbnode "$victim"
  killed=$(date +%s.%N)
  for ((i = 0; i < 200; i++)); do
    [[ $(lab route) != *"198.51.100.1${victim#dir}"* ]] && break
    sleep 0.05
  done
  gone=$(date +%s.%N)
  [[ $(lab route) != *"198.51.100.1${victim#dir}"* ]] || fail "$mode: the router still routes to $victim 10 s after its lbnode died"
  figure "$mode: the router dropped $victim $(awk -v a="$killed" -v b="$gone" 'BEGIN { printf "%.2f", b - a }') s after the kill"
  wait "$traffic" || true
  wait "${downloads[@]}" || true
  intact=$(count_intact "$DOWNLOADS" "$tmp/$mode.dl" "$want")
  broken=$((DOWNLOADS - intact))
  figure "$mode: $broken of $DOWNLOADS downloads broke ($most were going through $victim)"
  figure "$mode: new connections during the failure: $(wc -l <"$tmp/$mode.t") made, $(failed "$tmp/$mode.t") failed, $(awk '$2 == 200 && $3 > 0.5' "$tmp/$mode.t" | wc -l) slower than 0.5 s (a SYN to the dead director is retried by TCP)"
  for ((i = 0; i < DOWNLOADS; i++)); do
    grep -q "^$want " "$tmp/$mode.dl.$i.sum" ||
      echo "  download $i (server $(download_server "$tmp/$mode.dl" "$i")): $(cat "$tmp/$mode.dl.$i.sum")" >&2
  done
  ((broken == 0)) || fail "$mode: $broken of $DOWNLOADS downloads broke when $victim died (listed above)"
  # After the route change, new connections all go through the survivors.
  lab traffic 25 >"$tmp/$mode.t2"
  figure "$mode: after the route change: $(wc -l <"$tmp/$mode.t2") new connections, $(failed "$tmp/$mode.t2") failed"
  (($(failed "$tmp/$mode.t2") == 0)) || fail "$mode: new connections fail through the surviving directors"

  say "$mode: start-lbnode $victim"
  lab start-lbnode "$victim"
  wait_hops 3 30
}

run_mode tun
run_mode dr
echo "PASS: no download broke when a director died, in TUN and in DR"
