#!/usr/bin/env bash
# deploy/demo.sh — anylb end to end on one machine, as root:
#
#   1. installs what is missing (deploy/setup.sh) and builds (bazel -c opt);
#   2. brings up the lab (deploy/lab/lab.sh): clients, an FRR router with
#      kernel multipath, three lbnode directors with FRR, four nginx real
#      servers, the controller;
#   3. defines a service with lbctl (Maglev; TUN by default, --mode dr);
#   4. sends real HTTP traffic from the clients and shows the router's
#      ECMP route to the VIP, requests per director and per real server;
#   5. kills one director (kill -9 lbnode) during traffic: the route loses
#      it, traffic goes on through the others (failed requests counted);
#   6. drains a real server (weight 0): it gets no new requests.
#
#   deploy/demo.sh [--mode tun|dr] [--bin DIR] [--down] [--dir DIR]
#
#   --mode   the service's forwarding: tun (IPIP, default) or dr
#   --bin    use binaries already built there (skips setup and build)
#   --down   tear the lab down at the end (default: leave it up to look at)
#   --dir    the lab's state and logs (default /tmp/anylb-lab)
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=tun
BIN=""
DOWN=0
LAB_DIR=/tmp/anylb-lab
while [[ $# -gt 0 ]]; do
  case $1 in
    --mode) [[ $# -ge 2 ]] || { echo "demo: --mode tun|dr" >&2; exit 2; }; MODE=$2; shift 2 ;;
    --mode=*) MODE=${1#--mode=}; shift ;;
    --bin) [[ $# -ge 2 ]] || { echo "demo: --bin DIR" >&2; exit 2; }; BIN=$2; shift 2 ;;
    --bin=*) BIN=${1#--bin=}; shift ;;
    --dir) [[ $# -ge 2 ]] || { echo "demo: --dir DIR" >&2; exit 2; }; LAB_DIR=$2; shift 2 ;;
    --dir=*) LAB_DIR=${1#--dir=}; shift ;;
    --down) DOWN=1; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "demo: unknown argument \"$1\" (demo.sh --help)" >&2; exit 2 ;;
  esac
done
[[ $MODE == tun || $MODE == dr ]] || { echo "demo: --mode \"$MODE\": tun or dr" >&2; exit 2; }
if ((EUID != 0)); then
  echo "demo: run it as root (sudo deploy/demo.sh): the lab builds network namespaces, attaches XDP and runs FRR" >&2
  exit 1
fi

VIP=192.0.2.10
STAGES=$((9 + DOWN))
stage_no=0
stage() {
  stage_no=$((stage_no + 1))
  printf '\n\033[1m==> [%d/%d] %s\033[0m\n' "$stage_no" "$STAGES" "$*"
}
note() { printf '    %s\n' "$*"; }
lab() { deploy/lab/lab.sh --dir "$LAB_DIR" "$@"; }
indent() { sed 's/^/    /'; }

# bars FILE: "<count> <label>" lines as a table with a bar and a share.
bars() {
  awk '{ n[NR] = $1; l[NR] = $2; t += $1 }
       END { for (i = 1; i <= NR; i++) {
               w = t ? int(40 * n[i] / t + 0.5) : 0; b = ""
               for (j = 0; j < w; j++) b = b "#"
               printf "    %-13s %5d  %5.1f%%  %s\n", l[i], n[i], t ? 100 * n[i] / t : 0, b } }' "$1"
}

# per_server RESULTS: requests per real server, and the failures.
per_server() {
  awk '$2 == 200 { print $1 }' "$1" | sort | uniq -c | awk '{ print $1, $2 }' >"$tmp/servers"
  echo "    requests per real server (answer of GET /id):"
  bars "$tmp/servers"
  local total failed slow
  total=$(wc -l <"$1")
  failed=$(awk '$2 != 200' "$1" | wc -l)
  slow=$(awk '$2 == 200 && $3 > 0.5' "$1" | wc -l)
  echo "    $total requests, $failed failed, $slow slower than 0.5 s"
}

# flows_now: "dirN <new flows so far>" for every director whose lbnode
# answers.
flows_now() {
  local d n
  for d in dir1 dir2 dir3; do
    n=$(lab flows "$d" 2>/dev/null || true)
    [[ -n $n ]] && echo "$d $n"
  done
  return 0
}

# per_director BEFORE AFTER: the difference as "<count> <dir>" lines.
per_director() {
  echo "    requests per director (new flows in lbnode's /metrics):"
  join "$1" "$2" | awk -v killed="${KILLED:-}" '{ d = $3 - $2; if (d < 0) d = 0
    print d, $1 ($1 == killed ? "(killed)" : "") }' >"$tmp/dirs"
  bars "$tmp/dirs"
}

# settle: the workers publish counters every 100 ms and the fast path's
# up to a second late.
settle() { sleep 1.5; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
started=$(date +%s)

if [[ -z $BIN ]]; then
  stage "installing what is missing (deploy/setup.sh)"
  deploy/setup.sh | indent
  stage "building (bazel build -c opt)"
  targets=(//lbnode //controller:anylb_controller //controller/lbctl
    //lbnode/dataplane/bpf:lb_decap //deploy/lab:xdp_pass)
  note "bazel build -c opt ${targets[*]}"
  mkdir -p "$LAB_DIR"
  # Bazel's own progress, a line every 15 s (the first build takes minutes).
  if ! bazel build -c opt --curses=no --show_progress_rate_limit=15 \
    "${targets[@]}" 2>&1 | grep --line-buffered -v '^Loading:' | indent; then
    echo "demo: the build failed (above)" >&2
    exit 1
  fi
  BIN=$(bazel info -c opt bazel-bin 2>/dev/null)
  note "binaries in $BIN"
else
  STAGES=$((STAGES - 2))
fi
built=$(date +%s)

stage "bringing the lab up (deploy/lab/lab.sh --force up)"
lab --bin "$BIN" --force up | indent
cat <<'EOF'

    client 203.0.113.10-13
      |
    router 198.51.100.1   FRR AS 65000, kernel multipath (L4 hash)
      |
    bridge 198.51.100.0/24 -+- dir1 .11  dir2 .12  dir3 .13   lbnode + FRR AS 65001-65003 (BGP, FPM)
                            +- rs1 .21 .. rs4 .24             nginx, lb_decap, VIP 192.0.2.10 on lo
                            +- ctl .5                         anylb-controller (TLS, node certificates)
EOF

stage "defining the service with lbctl (Maglev, $MODE)"
lab service "$MODE" | indent
note ""
lab lbctl -Ln | indent

stage "the router's route to the VIP (BGP from each director, in the kernel FIB)"
lab route | indent
note ""
note "BGP paths on the router (show bgp ipv4 unicast $VIP):"
lab exec router vtysh --vty_socket "$LAB_DIR/run/frr-router" -c "show bgp ipv4 unicast $VIP" |
  grep -E 'Paths:|^  [0-9]|from |Extended Community|multipath' | indent

stage "traffic: 4 client addresses x 100 requests, each a new TCP connection"
lab traffic 10 >/dev/null # first flows of each director: neighbours, fast path
settle
flows_now >"$tmp/f0"
lab traffic 100 >"$tmp/t1"
settle
flows_now >"$tmp/f1"
per_director "$tmp/f0" "$tmp/f1"
per_server "$tmp/t1"

stage "killing director dir2 (kill -9 lbnode) while traffic flows"
note "8 downloads of 1 MiB (~4 s each, 256 KiB/s), then 4 clients x 400 requests"
note "at 100/s each; dir2's lbnode is killed 1.5 s into the requests"
want=$(sha256sum <"$LAB_DIR/run/big" | cut -d' ' -f1)
flows_now >"$tmp/d0"
downloads=()
for i in 0 1 2 3 4 5 6 7; do
  a=203.0.113.1$((i % 4))
  lab exec client sh -c "curl -s --interface $a --max-time 30 http://$VIP/big | sha256sum" \
    >"$tmp/dl.$i" 2>&1 &
  downloads+=($!)
done
sleep 0.5
flows_now >"$tmp/d1"
on_dir2=$(join "$tmp/d0" "$tmp/d1" | awk '$1 == "dir2" { print $3 - $2 }')
flows_now >"$tmp/f2"
lab traffic 400 100/s >"$tmp/t2" &
traffic=$!
sleep 1.5
flows_now >"$tmp/f2b"
lab kill-lbnode dir2
killed=$(date +%s.%N)
note "kill -9 done; its TUN device (and the VIP route on it) went with it"
for ((i = 0; i < 200; i++)); do
  [[ $(lab route) != *198.51.100.12* ]] && break
  sleep 0.05
done
gone=$(date +%s.%N)
note "$(awk -v a="$killed" -v b="$gone" 'BEGIN { printf "the router dropped dir2 after %.2f s:", b - a }')"
lab route | indent
wait "$traffic" || true
wait "${downloads[@]}" || true
intact=$(cat "$tmp"/dl.* | grep -c "^$want " || true)
settle
flows_now >"$tmp/f3"
# dir2's counters died with it: its share is what it had before the kill.
{ cat "$tmp/f3"; grep '^dir2 ' "$tmp/f2b"; } | sort >"$tmp/f3b"
KILLED=dir2 per_director "$tmp/f2" "$tmp/f3b"
per_server "$tmp/t2"
note "downloads: $intact of 8 finished intact (sha256 of /big), ${on_dir2:-?} of them"
note "  were going through dir2 when it died: the router moved them to dir1/dir3,"
note "  and Maglev sends a moved flow to the same real server from any director"
note "(a connection whose SYN reached dir2 between the kill and the route change"
note " is retried by TCP a second later through dir1/dir3: the slow ones above)"

stage "draining real server rs4 (lbctl -e ... -w 0): no new requests for it"
flag=-i
[[ $MODE == dr ]] && flag=-g
note "+ lbctl -e -t $VIP:80 -r 198.51.100.24:80 $flag -w 0"
# revision dirN: the config revision lbnode on dirN forwards with.
revision() {
  lab exec "$1" curl -s --max-time 1 http://127.0.0.1:9464/metrics |
    awk '/^anylb_config_revision / { printf "%d\n", $2 }'
}
before=$(revision dir1)
lab lbctl -e -t "$VIP:80" -r 198.51.100.24:80 "$flag" -w 0
for ((i = 0; i < 100; i++)); do
  r1=$(revision dir1)
  r3=$(revision dir3)
  ((r1 > before && r3 == r1)) && break
  sleep 0.1
done
note "dir1 and dir3 forward with revision $r1 (was $before)"
flows_now >"$tmp/f4"
lab traffic 100 >"$tmp/t3"
settle
flows_now >"$tmp/f5"
per_director "$tmp/f4" "$tmp/f5"
per_server "$tmp/t3"
note ""
lab lbctl -Ln | indent

stage "done in $(($(date +%s) - built)) s after the build"
if ((DOWN)); then
  note "(--down: the lab is torn down next; without it, it stays up)"
fi
cat <<EOF
    The lab stays up (dir2's lbnode dead until you start it). Look around:
      deploy/lab/lab.sh status                 every process, BGP, the route
      deploy/lab/lab.sh lbctl -Ln --stats      the fleet's counters (ipvsadm -Ln --stats)
      deploy/lab/lab.sh lbctl nodes            the directors as the controller sees them
      deploy/lab/lab.sh route                  the router's ECMP route (ip route show $VIP)
      deploy/lab/lab.sh exec router ip route   anything in a namespace
      deploy/lab/lab.sh start-lbnode dir2      bring dir2 back
      deploy/lab/lab.sh traffic 100            more requests
      logs: $LAB_DIR/logs
    Tear down:
      deploy/lab/lab.sh down
EOF
if ((DOWN)); then
  stage "tearing down"
  lab down | indent
fi
echo "demo: total $(($(date +%s) - started)) s"
