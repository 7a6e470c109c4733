#!/usr/bin/env bash
# tests/e2e/lab_smoke_test.sh — the lab of deploy/lab/lab.sh, end to end:
# `up` (a lab of its own, namespaces anylb-lab-e2e<pid>-*, beside any demo
# lab), `up` again says it is up, `service tun`, one HTTP request from the
# client through the VIP (router ECMP -> a director's lbnode -> IPIP -> a
# real server's nginx), `status`, `down`, and then nothing is left: no
# namespace, no process, no state folder. Needs root (tags local, netns).
set -euo pipefail
export PATH=/usr/sbin:/sbin:$PATH

fail() { echo "FAIL: $*" >&2; exit 1; }
if ((EUID != 0)); then
  fail "lab_smoke_test builds network namespaces, attaches XDP and runs FRR: run it as root (deploy/test.sh does)"
fi

runfiles=${TEST_SRCDIR:?run it with bazel test}/anylb
name=e2e$$
dir=/tmp/anylb-lab-$name
lab() { "$runfiles/deploy/lab/lab.sh" --name "$name" --dir "$dir" --bin "$runfiles" "$@"; }

# Whatever happens, the lab goes (and its logs are shown on failure).
cleanup() {
  local status=$?
  if ((status != 0)) && [[ -d $dir/logs ]]; then
    for f in "$dir"/logs/*.log; do
      echo "--- $f (last 15 lines)"
      tail -15 "$f"
    done >&2
  fi
  lab down >/dev/null 2>&1 || true
}
trap cleanup EXIT

echo "== lab up"
lab up

echo "== lab up again (already up)"
out=$(lab up)
echo "$out"
[[ $out == *"already up"* ]] || fail "a second up did not say the lab is up: $out"

echo "== lab service tun"
lab service tun

echo "== one HTTP request through the VIP"
body=$(lab exec client curl -sS --fail --max-time 10 http://192.0.2.10/id) ||
  fail "GET http://192.0.2.10/id from the client failed"
echo "answered by: $body"
[[ $body =~ ^rs[1-4]$ ]] || fail "GET /id through the VIP answered \"$body\", want rs1..rs4"

echo "== lab status"
status=$(lab status) || fail "lab status says something is down: $status"
echo "$status"
for d in dir1 dir2 dir3; do
  grep -q "anylb-lab-$name-$d: .*lbnode(up)" <<<"$status" || fail "status: no running lbnode on $d"
done
[[ $(grep -c 'nexthop via' <<<"$status") -eq 3 ]] || fail "status: the router's route to the VIP has not 3 next hops"

echo "== lab down"
lab down
trap - EXIT

left=$(ip netns list | awk '{print $1}' | grep "^anylb-lab-$name-" || true)
[[ -z $left ]] || fail "namespaces left after down: $left"
procs=$(pgrep -af -- "$dir" || true)
[[ -z $procs ]] || fail "processes left after down: $procs"
[[ ! -e $dir ]] || fail "$dir left after down"
echo "PASS: nothing left"
