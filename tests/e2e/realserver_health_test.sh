#!/usr/bin/env bash
# tests/e2e/realserver_health_test.sh — issue 9, real-server failure and
# drain with health checks. The service (TUN, Maglev, rs1..rs4) comes from
# `lbctl apply -f` with an HTTP check of /id every 200 ms (timeout 150 ms,
# rise 2, fall 2), run by every director.
#   1. nginx on rs3 stops during traffic: every director marks it down
#      (the time, and the requests that failed before, are printed); after
#      that no request fails and none goes to rs3.
#   2. nginx on rs3 starts again: it comes back up and gets requests again.
#   3. rs4 is drained (weight 0, apply -f) during 24 slow downloads: the
#      ones on rs4 complete intact, and new requests no longer reach rs4.
# Needs root.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "${TEST_SRCDIR:?run it with bazel test}/anylb/tests/e2e/lib.sh"
e2e_init e2ehc

# services_yaml RS4_WEIGHT: the service with its health check.
services_yaml() {
  cat <<EOF
services:
  - name: web
    vip: $VIP
    port: 80
    protocol: tcp
    scheduler: mh
    forwarding: {mode: tun}
    backends:
      - {address: 198.51.100.21, weight: 1}
      - {address: 198.51.100.22, weight: 1}
      - {address: 198.51.100.23, weight: 1}
      - {address: 198.51.100.24, weight: $1}
    health_check:
      interval: 200ms
      timeout: 150ms
      rise: 2
      fall: 2
      http: {path: /id}
EOF
}

# apply RS4_WEIGHT: the services file through lbctl apply -f (the file lies
# in the lab's run folder: lbctl runs in the controller's namespace).
apply() {
  services_yaml "$1" >"$dir/run/services.yaml"
  lab lbctl apply -f "$dir/run/services.yaml"
}

# health_states RS: that real server's state on each director (1 up, 0
# down, -1 unchecked; "none" when lbnode does not report it).
health_states() {
  local d s out=""
  for d in "${DIRECTORS[@]}"; do
    s=$(metrics "$d" | awk -v b="backend=\"$(rs_addr "$1"):" \
      '/^anylb_health_state\{/ && index($0, b) { print $NF; exit }')
    out+="${s:-none} "
  done
  echo "${out% }"
}

# wait_health RS STATE SECONDS: until every director reports RS in STATE;
# prints the seconds it took.
wait_health() {
  local rs=$1 state=$2 seconds=$3 start i states
  start=$(date +%s.%N)
  for ((i = 0; i < seconds * 20; i++)); do
    states=$(health_states "$rs")
    if [[ $states == "$state $state $state" ]]; then
      awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f\n", b - a }'
      return 0
    fi
    sleep 0.05
  done
  fail "$rs is not $state on every director after ${seconds}s (states: $states)"
}

say "lab up, apply -f the service with its health check"
lab up
apply 1
wait_hops 3 30
for r in "${REAL_SERVERS[@]}"; do wait_health "$r" 1 20 >/dev/null; done
lab traffic 10 >/dev/null
lab traffic 50 >"$tmp/t0"
per_server "$tmp/t0" >"$tmp/s0"
figure "all up: $(failed "$tmp/t0") of $(wc -l <"$tmp/t0") requests failed; per server: $(tr '\n' ' ' <"$tmp/s0")"
(($(failed "$tmp/t0") == 0)) || fail "requests fail with every real server up"
awk '$2 == 0 { bad = 1 } END { exit bad }' "$tmp/s0" || fail "a real server got no request with every server up: $(tr '\n' ' ' <"$tmp/s0")"

say "1. nginx on rs3 stops (while 4 x 50 requests/s flow)"
lab traffic 100 50/s >"$tmp/tw" &
traffic=$!
sleep 0.5
nginx_pid=$(cat "$dir/run/rs3-nginx.pid")
kill -TERM "$nginx_pid"
took=$(wait_health rs3 0 10)
figure "rs3 down on all three directors ${took} s after nginx stopped (fall 2 x 200 ms)"
wait "$traffic" || true
figure "requests across the failure (2 s at 4 x 50/s): $(failed "$tmp/tw") of $(wc -l <"$tmp/tw") failed (those sent to rs3 before the detection)"
lab traffic 100 >"$tmp/t1"
per_server "$tmp/t1" >"$tmp/s1"
figure "rs3 down: $(failed "$tmp/t1") of $(wc -l <"$tmp/t1") requests failed; per server: $(tr '\n' ' ' <"$tmp/s1")"
(($(failed "$tmp/t1") == 0)) || fail "$(failed "$tmp/t1") requests failed after rs3 was detected down: $(awk '$2 != 200' "$tmp/t1" | sort | uniq -c | head -3)"
[[ $(awk '$1 == "rs3" { print $2 }' "$tmp/s1") -eq 0 ]] || fail "rs3 answered requests while down?"

say "2. nginx on rs3 starts again"
lab exec rs3 setsid nginx -p "$dir/run/nginx-rs3/" -e "$dir/logs/rs3-nginx-error.log" \
  -c "$dir/run/nginx-rs3/nginx.conf" </dev/null >>"$dir/logs/rs3-nginx.log" 2>&1 &
took=$(wait_health rs3 1 10)
figure "rs3 up on all three directors ${took} s after nginx started (rise 2 x 200 ms)"
lab traffic 50 >"$tmp/t2"
per_server "$tmp/t2" >"$tmp/s2"
figure "rs3 back: $(failed "$tmp/t2") of $(wc -l <"$tmp/t2") requests failed; per server: $(tr '\n' ' ' <"$tmp/s2")"
(($(failed "$tmp/t2") == 0)) || fail "requests fail after rs3 came back"
[[ $(awk '$1 == "rs3" { print $2 }' "$tmp/s2") -gt 0 ]] || fail "rs3 is up again but gets no request"

say "3. drain rs4 (weight 0) during 24 slow downloads"
want=$(big_sha)
start_downloads 24 "$tmp/dl"
sleep 1
before=$(revision dir1)
apply 0
wait_revision_above "$before" 10
lab traffic 50 >"$tmp/t3"
wait "${downloads[@]}" || true
on_rs4=0 rs4_intact=0 intact=0
for ((i = 0; i < 24; i++)); do
  ok=0
  grep -q "^$want " "$tmp/dl.$i.sum" && ok=1
  intact=$((intact + ok))
  if [[ $(download_server "$tmp/dl" "$i") == rs4 ]]; then
    on_rs4=$((on_rs4 + 1))
    rs4_intact=$((rs4_intact + ok))
  fi
done
per_server "$tmp/t3" >"$tmp/s3"
figure "drain: $intact of 24 downloads intact; on rs4: $rs4_intact of $on_rs4 intact"
figure "drained: $(failed "$tmp/t3") of $(wc -l <"$tmp/t3") new requests failed; per server: $(tr '\n' ' ' <"$tmp/s3")"
((on_rs4 > 0)) || fail "none of the 24 downloads went to rs4 (Maglev gives it a quarter): nothing to check"
((rs4_intact == on_rs4)) || fail "$((on_rs4 - rs4_intact)) of $on_rs4 downloads from rs4 broke when it was drained"
((intact == 24)) || fail "$((24 - intact)) downloads from other servers broke during the drain"
(($(failed "$tmp/t3") == 0)) || fail "new requests fail while rs4 is drained"
[[ $(awk '$1 == "rs4" { print $2 }' "$tmp/s3") -eq 0 ]] || fail "the drained rs4 still gets new requests"
echo "PASS: health checks take a dead server out and back without failed requests; a drained server's connections complete"
