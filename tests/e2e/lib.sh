# tests/e2e/lib.sh — helpers shared by the e2e tests (sourced, not run).
#
# e2e_init NAME starts nothing: it checks root, sets `runfiles`, `name`
# (NAME<pid>, the lab's --name), `dir` (its state folder), `tmp`, and the
# trap that tears the lab down on any exit (printing every log's tail when
# the test failed). Then `lab ARGS...` is (a copy of) deploy/lab/lab.sh for
# that lab, with the binaries of the test's runfiles. The measuring helpers follow
# deploy/demo.sh: new flows per director from lbnode's /metrics, requests per
# real server from nginx's GET /id answer.
# shellcheck shell=bash

export PATH=/usr/sbin:/sbin:$PATH

VIP=192.0.2.10
DIRECTORS=(dir1 dir2 dir3)
REAL_SERVERS=(rs1 rs2 rs3 rs4)
CLIENT_ADDRS=(203.0.113.10 203.0.113.11 203.0.113.12 203.0.113.13)

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
say() { printf '== %s\n' "$*"; }
# figure TEXT: a measured figure the issue asks to report (grep "FIGURE").
figure() { printf 'FIGURE: %s\n' "$*"; }

rs_addr() { echo "198.51.100.2${1#rs}"; }

e2e_init() {
  local test_name=$1
  if ((EUID != 0)); then
    fail "$test_name builds network namespaces, attaches XDP and runs FRR: run it as root (deploy/test.sh does)"
  fi
  runfiles=${TEST_SRCDIR:?run it with bazel test}/anylb
  name=${test_name}$$
  name=${name:0:12}
  dir=/tmp/anylb-lab-$name
  tmp=$(mktemp -d)
  # lab.sh runs from a copy taken now: bash reads a script as it goes, so
  # an edit of the checkout's lab.sh during the test (a shared checkout)
  # would make it run garbage. Its templates and make-certs.sh are found
  # beside it, as in the checkout.
  mkdir -p "$tmp/src/deploy/lab"
  cp "$runfiles/deploy/lab/lab.sh" "$tmp/src/deploy/lab/lab.sh"
  ln -s "$runfiles/deploy/frr" "$tmp/src/deploy/frr"
  ln -s "$runfiles/deploy/make-certs.sh" "$tmp/src/deploy/make-certs.sh"
  trap e2e_cleanup EXIT
  trap 'exit 130' INT TERM HUP
}

lab() { "$tmp/src/deploy/lab/lab.sh" --name "$name" --dir "$dir" --bin "$runfiles" "$@"; }

# e2e_cleanup: the lab goes, whatever happened; its logs are shown on a
# failure. Background jobs of the test are stopped first.
e2e_cleanup() {
  local status=$? f
  local -a bg
  mapfile -t bg < <(jobs -p)
  if ((${#bg[@]})); then kill "${bg[@]}" 2>/dev/null || true; fi
  if ((status != 0)) && [[ -d $dir/logs ]]; then
    for f in "$dir"/logs/*.log*; do
      echo "--- $f (last 15 lines)"
      tail -15 "$f"
    done >&2
  fi
  lab down >/dev/null 2>&1 || true
  rm -rf "$tmp"
  exit "$status"
}

# router_hops: next hops of the router's route to the VIP.
router_hops() {
  local r
  r=$(lab route)
  if [[ $r == "(no route"* ]]; then echo 0
  elif [[ $r == *nexthop* ]]; then grep -c nexthop <<<"$r"
  else echo 1
  fi
}

# wait_hops N SECONDS: until the router's route has N next hops.
wait_hops() {
  local want=$1 seconds=$2 i hops=0
  for ((i = 0; i < seconds * 10; i++)); do
    hops=$(router_hops)
    ((hops == want)) && return 0
    sleep 0.1
  done
  lab route >&2
  fail "the router's route to $VIP has $hops next hops after ${seconds}s, want $want"
}

# metrics NODE: lbnode's /metrics on that director (empty if it is down).
metrics() { lab exec "$1" curl -s --max-time 2 http://127.0.0.1:9464/metrics 2>/dev/null || true; }

# flows_now: "dirN <new flows so far>" for every director whose lbnode
# answers (sorted, for join).
flows_now() {
  local d n
  for d in "${DIRECTORS[@]}"; do
    n=$(lab flows "$d" 2>/dev/null || true)
    [[ -n $n ]] && echo "$d $n"
  done
  return 0
}

# flows_delta BEFORE AFTER: "dirN <new flows between them>" per director.
flows_delta() {
  join "$1" "$2" | awk '{ d = $3 - $2; if (d < 0) d = 0; print $1, d }'
}

# settle: lbnode's workers publish their counters every 100 ms, the XDP fast
# path's up to a second late.
settle() { sleep 1.5; }

# shares FILE: "<label> <count>" lines -> "<label> <count> <percent>" lines.
shares() {
  awk '{ l[NR] = $1; n[NR] = $2; t += $2 }
       END { for (i = 1; i <= NR; i++) printf "%s %d %.1f\n", l[i], n[i], t ? 100 * n[i] / t : 0 }' "$1"
}

# per_server RESULTS: "rsN <answered requests>" for rs1..rs4 from lab
# traffic's "<server> <code> <seconds>" lines (0 for a server never seen).
per_server() {
  local r
  for r in "${REAL_SERVERS[@]}"; do
    echo "$r $(awk -v r="$r" '$1 == r && $2 == 200' "$1" | wc -l)"
  done
}

# failed RESULTS: requests of lab traffic that got no 200.
failed() { awk '$2 != 200' "$1" | wc -l; }

# revision NODE: the config revision lbnode on NODE forwards with.
revision() {
  metrics "$1" | awk '/^anylb_config_revision / { printf "%d\n", $2 }'
}

# wait_revision_above REV SECONDS: until every running director forwards
# with a revision above REV.
wait_revision_above() {
  local rev=$1 seconds=$2 i d r ok
  for ((i = 0; i < seconds * 10; i++)); do
    ok=1
    for d in "${DIRECTORS[@]}"; do
      r=$(revision "$d")
      [[ -n $r ]] || continue
      ((r > rev)) || ok=0
    done
    ((ok)) && return 0
    sleep 0.1
  done
  fail "the directors do not forward with a revision above $rev after ${seconds}s"
}

# start_downloads N PREFIX: N GETs of /big (1 MiB at 256 KiB/s, ~4 s), from
# the client addresses in turn, in the background: PREFIX.i.h (headers) and
# PREFIX.i.sum (sha256 of the body). Their pids in
# the array `downloads`.
start_downloads() {
  local n=$1 prefix=$2 i a
  downloads=()
  for ((i = 0; i < n; i++)); do
    a=${CLIENT_ADDRS[i % ${#CLIENT_ADDRS[@]}]}
    lab exec client sh -c "curl -s --interface $a --max-time 40 -D $prefix.$i.h http://$VIP/big | sha256sum" \
      >"$prefix.$i.sum" 2>&1 &
    downloads+=($!)
  done
}

# count_intact N PREFIX WANT: downloads whose body has the sha256 WANT.
count_intact() {
  local n=$1 prefix=$2 want=$3 i ok=0
  for ((i = 0; i < n; i++)); do
    grep -q "^$want " "$prefix.$i.sum" 2>/dev/null && ok=$((ok + 1))
  done
  echo "$ok"
}

# download_server PREFIX I: the real server of download I (X-Server header).
download_server() {
  awk 'tolower($1) == "x-server:" { gsub(/\r/, ""); print $2 }' "$1.$2.h" 2>/dev/null | head -1
}

big_sha() { sha256sum <"$dir/run/big" | cut -d' ' -f1; }
