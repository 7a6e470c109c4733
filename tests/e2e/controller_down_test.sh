#!/usr/bin/env bash
# tests/e2e/controller_down_test.sh — issue 9, controller down: with the
# service installed, the controller is killed (kill -9). The directors keep
# forwarding with the config they have (no request fails, every real server
# answers, the router keeps its three next hops) and lbctl says it cannot
# reach the controller. The controller starts again on its store: the
# directors reconnect, the service is still there, and a change made then
# (rs4 drained) reaches every director and the traffic. Prints the figures.
# Needs root.
set -euo pipefail
# shellcheck source=tests/e2e/lib.sh
source "${TEST_SRCDIR:?run it with bazel test}/anylb/tests/e2e/lib.sh"
e2e_init e2ectl

# start_controller: as lab.sh starts it (same store, certificates, tokens).
start_controller() {
  lab exec ctl setsid "$runfiles/controller/anylb_controller" \
    --listen=198.51.100.5:50051 "--store=$dir/run/controller/store.db" \
    "--tls_cert=$dir/pki/controller.crt" "--tls_key=$dir/pki/controller.key" \
    "--client_ca=$dir/pki/ca.crt" "--token_file=$dir/pki/tokens" \
    --metrics_address=127.0.0.1:9465 </dev/null >>"$dir/logs/ctl-controller.log" 2>&1 &
  echo $! >"$dir/run/ctl-controller.pid"
}

# connected NODE: 1 when lbnode on NODE is connected to the controller.
connected() { metrics "$1" | awk '/^anylb_controller_connected / { printf "%d\n", $2 }'; }

# wait_connected WANT SECONDS: until every director's connected gauge is WANT.
wait_connected() {
  local want=$1 seconds=$2 i d ok states
  for ((i = 0; i < seconds * 10; i++)); do
    ok=1 states=""
    for d in "${DIRECTORS[@]}"; do
      states+="$d=$(connected "$d") "
      [[ $(connected "$d") == "$want" ]] || ok=0
    done
    ((ok)) && return 0
    sleep 0.1
  done
  fail "directors not all connected=$want after ${seconds}s: $states"
}

say "lab up, service tun"
lab up
lab service tun
wait_hops 3 30
wait_connected 1 20
lab traffic 10 >/dev/null
rev=$(revision dir1)

say "kill -9 the controller"
kill -KILL "$(cat "$dir/run/ctl-controller.pid")"
wait_connected 0 20
figure "every director says it lost the controller (anylb_controller_connected 0)"
if out=$(lab lbctl -Ln 2>&1); then fail "lbctl -Ln worked with the controller dead: $out"; fi
figure "lbctl with the controller down: $out"
[[ $out == *"cannot reach the controller"* ]] || fail "lbctl does not say it cannot reach the controller: $out"

lab traffic 100 >"$tmp/t1"
per_server "$tmp/t1" >"$tmp/s1"
figure "controller down: $(failed "$tmp/t1") of $(wc -l <"$tmp/t1") requests failed; per server: $(tr '\n' ' ' <"$tmp/s1"); router next hops: $(router_hops)"
(($(failed "$tmp/t1") == 0)) || fail "requests fail while the controller is down"
awk '$2 == 0 { bad = 1 } END { exit bad }' "$tmp/s1" || fail "a real server got no request while the controller is down"
(($(router_hops) == 3)) || fail "the router lost next hops while the controller is down: $(lab route)"
for d in "${DIRECTORS[@]}"; do
  [[ $(revision "$d") == "$rev" ]] || fail "$d forwards with revision $(revision "$d"), want $rev (the last one)"
done

say "the controller starts again"
start_controller
start=$(date +%s.%N)
wait_connected 1 30
figure "every director reconnected $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }') s after the controller started"
lab lbctl -Ln | grep -q "198.51.100.24:80" || fail "the service is gone after the controller restarted: $(lab lbctl -Ln)"

say "a change after the return: drain rs4 (weight 0)"
lab lbctl -e -t "$VIP:80" -r 198.51.100.24:80 -i -w 0
start=$(date +%s.%N)
wait_revision_above "$rev" 20
figure "the change reached every director in $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }') s"
lab traffic 100 >"$tmp/t2"
per_server "$tmp/t2" >"$tmp/s2"
figure "after the change: $(failed "$tmp/t2") of $(wc -l <"$tmp/t2") requests failed; per server: $(tr '\n' ' ' <"$tmp/s2")"
(($(failed "$tmp/t2") == 0)) || fail "requests fail after the controller came back"
[[ $(awk '$1 == "rs4" { print $2 }' "$tmp/s2") -eq 0 ]] || fail "rs4 still gets new requests after it was drained through the restarted controller"
echo "PASS: traffic went on without the controller, and its config resumed when it came back"
