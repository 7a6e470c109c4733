#!/usr/bin/env bash
# deploy/lab/lab.sh — the whole anylb system on one machine, in network
# namespaces: clients, an upstream router running FRR (BGP, kernel multipath
# with an L4 hash), three lbnode directors each with its own FRR (BGP + FPM),
# four real servers running nginx (and lb_decap for TUN), and the controller
# (TLS, node certificates, an operator token). Needs root.
#
#   deploy/lab/lab.sh [OPTIONS] up        build the lab (idempotent)
#   deploy/lab/lab.sh [OPTIONS] status    what runs, BGP, the router's route
#   deploy/lab/lab.sh [OPTIONS] down      stop everything, remove the lab
#   deploy/lab/lab.sh [OPTIONS] service [tun|dr|nat|fullnat]
#                                      VIP 192.0.2.10:80, mh, rs1-4 (MODE: README)
#   deploy/lab/lab.sh [OPTIONS] lbctl ARGS...      lbctl against the controller
#   deploy/lab/lab.sh [OPTIONS] exec NODE CMD...   a command in a namespace
#   deploy/lab/lab.sh [OPTIONS] traffic [N [RATE]] N HTTP GETs of /id from
#                                                  each client address: one
#                                                  line per request
#   deploy/lab/lab.sh [OPTIONS] flows dirN         new flows lbnode on dirN
#                                                  scheduled
#   deploy/lab/lab.sh [OPTIONS] route              the router's route to the VIP
#   deploy/lab/lab.sh [OPTIONS] kill-lbnode dirN   kill -9 one director's lbnode
#   deploy/lab/lab.sh [OPTIONS] start-lbnode dirN  start it again
#
# Options (before the command):
#   --dir DIR    state and logs (default /tmp/anylb-lab, or /tmp/anylb-lab-NAME)
#   --name NAME  a second lab beside the default one: namespaces
#                anylb-lab-NAME-*, a separate DIR (the e2e test uses this)
#   --bin DIR    where lbnode/lbnode, controller/anylb_controller,
#                controller/lbctl/lbctl, lbnode/dataplane/bpf/lb_decap,
#                deploy/lab/xdp_pass.o are (default: bazel build -c opt of
#                them, then bazel-bin)
#   --force      up: tear down a running lab first and build it again
#   --all        down: every namespace named anylb-lab-* (after a crash)
#
# Namespaces: anylb-lab-{client,router,switch,ctl,dir1..3,rs1..4}. Every
# process the lab starts runs inside one of them, so `down` finds them all
# with `ip netns pids` even when the lab's state directory is gone.
# Addresses: documentation ranges only, and only inside these namespaces
# (deploy/lab/README.md has the plan).
set -euo pipefail
# sudo and Bazel tests may leave the admin tools (ip, sysctl, nginx) off PATH.
export PATH=$PATH:/usr/sbin:/sbin

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)
FRR_TEMPLATES=$REPO/deploy/frr

# --- address plan ----------------------------------------------------------
VIP=192.0.2.10
VIP_PORT=80
LAN_PREFIX=198.51.100
LAN6_PREFIX=2001:db8:b:
ROUTER_LAN=198.51.100.1
ROUTER_LAN6=2001:db8:b::1
ROUTER_CLIENT=203.0.113.1
ROUTER_CLIENT6=2001:db8:c::1
CONTROLLER_ADDR=198.51.100.5
CONTROLLER=$CONTROLLER_ADDR:50051
CLIENT_ADDRS=(203.0.113.10 203.0.113.11 203.0.113.12 203.0.113.13)
DIRECTORS=(dir1 dir2 dir3)
REAL_SERVERS=(rs1 rs2 rs3 rs4)
ROUTER_AS=65000
# director_addr dirN -> 198.51.100.1N ; rs_addr rsN -> 198.51.100.2N
director_addr() { echo "$LAN_PREFIX.1${1#dir}"; }
director_addr6() { echo "${LAN6_PREFIX}:1${1#dir}"; }
rs_addr() { echo "$LAN_PREFIX.2${1#rs}"; }
rs_addr6() { echo "${LAN6_PREFIX}:2${1#rs}"; }

# --- options -----------------------------------------------------------------
NAME=""
DIR=""
BIN=""
FORCE=0
ALL=0
usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}" >&2
  exit 2
}
while [[ $# -gt 0 ]]; do
  case $1 in
    --dir) [[ $# -ge 2 ]] || usage; DIR=$2; shift 2 ;;
    --dir=*) DIR=${1#--dir=}; shift ;;
    --name) [[ $# -ge 2 ]] || usage; NAME=$2; shift 2 ;;
    --name=*) NAME=${1#--name=}; shift ;;
    --bin) [[ $# -ge 2 ]] || usage; BIN=$2; shift 2 ;;
    --bin=*) BIN=${1#--bin=}; shift ;;
    --force) FORCE=1; shift ;;
    --all) ALL=1; shift ;;
    -h|--help|help) usage ;;
    -*) echo "lab: unknown option \"$1\" (lab.sh --help)" >&2; exit 2 ;;
    *) break ;;
  esac
done
[[ $# -ge 1 ]] || usage
COMMAND=$1
shift
if [[ -n $NAME && ! $NAME =~ ^[a-z0-9]{1,12}$ ]]; then
  echo "lab: --name \"$NAME\": use 1..12 of [a-z0-9]" >&2
  exit 2
fi
PREFIX=anylb-lab-${NAME:+$NAME-}
: "${DIR:=/tmp/anylb-lab${NAME:+-$NAME}}"
LOGS=$DIR/logs
RUN=$DIR/run
PKI=$DIR/pki

ns() { echo "$PREFIX$1"; }
nodes() { echo client router switch ctl "${DIRECTORS[@]}" "${REAL_SERVERS[@]}"; }
in_ns() { local n=$1; shift; ip netns exec "$(ns "$n")" "$@"; }
say() { printf '%s\n' "lab: $*"; }
die() { printf '%s\n' "lab: $*" >&2; exit 1; }

need_root() {
  ((EUID == 0)) || die "$COMMAND needs root (network namespaces, XDP, FRR): run it with sudo"
}

# --- binaries ----------------------------------------------------------------
BINARIES=(lbnode/lbnode controller/anylb_controller controller/lbctl/lbctl
  lbnode/dataplane/bpf/lb_decap deploy/lab/xdp_pass.o)
TARGETS=(//lbnode //controller:anylb_controller //controller/lbctl
  //lbnode/dataplane/bpf:lb_decap //deploy/lab:xdp_pass)
resolve_bin() {
  if [[ -z $BIN && -f $DIR/lab.env ]]; then
    BIN=$(sed -n 's/^bin=//p' "$DIR/lab.env")
  fi
  if [[ -z $BIN ]]; then
    command -v bazel >/dev/null || die "bazel not found: run deploy/setup.sh, or give --bin DIR"
    say "building (bazel build -c opt; the first time takes a while)"
    (cd "$REPO" && bazel build -c opt "${TARGETS[@]}") >"$DIR/build.log" 2>&1 || { tail -30 "$DIR/build.log" >&2; die "build failed; the whole output is in $DIR/build.log"; }
    BIN=$(cd "$REPO" && bazel info -c opt bazel-bin 2>/dev/null)
  fi
  for b in "${BINARIES[@]}"; do
    [[ -f $BIN/$b ]] || die "$BIN/$b is missing: build it (bazel build -c opt ${TARGETS[*]}) or give --bin DIR"
  done
}

check_tools() {
  local missing=()
  for t in ip ethtool nginx curl vtysh openssl runuser sysctl; do
    command -v "$t" >/dev/null || missing+=("$t")
  done
  for d in zebra bgpd bfdd; do
    [[ -x /usr/lib/frr/$d ]] || missing+=("/usr/lib/frr/$d")
  done
  id frr >/dev/null 2>&1 || missing+=("user frr")
  ((${#missing[@]} == 0)) || die "missing: ${missing[*]}; run deploy/setup.sh"
  [[ -f $FRR_TEMPLATES/router-bgp.conf ]] || die "FRR templates not found in $FRR_TEMPLATES"
}

# --- processes -----------------------------------------------------------------
# spawn NODE TAG CMD...: runs CMD in NODE's namespace, in its own session
# (a Ctrl-C of the caller does not reach it), output to $LOGS/NODE-TAG.log,
# pid in $RUN/NODE-TAG.pid.
spawn() {
  local node=$1 tag=$2
  shift 2
  ip netns exec "$(ns "$node")" setsid "$@" </dev/null >>"$LOGS/$node-$tag.log" 2>&1 &
  echo $! >"$RUN/$node-$tag.pid"
}

alive() { # alive NODE TAG
  local pid
  pid=$(cat "$RUN/$1-$2.pid" 2>/dev/null) || return 1
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null
}

# wait_for_log NODE TAG TEXT SECONDS: until the log holds TEXT; fails (with
# the log's tail) if the process died or the time ran out.
wait_for_log() {
  local node=$1 tag=$2 text=$3 seconds=$4 log=$LOGS/$1-$2.log i
  for ((i = 0; i < seconds * 10; i++)); do
    grep -qF -- "$text" "$log" 2>/dev/null && return 0
    alive "$node" "$tag" || break
    sleep 0.1
  done
  tail -20 "$log" >&2 || true
  die "$node: $tag did not say \"$text\" within ${seconds}s (log: $log)"
}

# --- templates ---------------------------------------------------------------
# expand FILE KEY=VALUE...: FILE with every {{KEY}} replaced; a placeholder
# left without a value is an error naming it.
expand() {
  local file=$1 text kv
  shift
  text=$(<"$file")
  for kv in "$@"; do
    text=${text//"{{${kv%%=*}}}"/"${kv#*=}"}
  done
  if [[ $text == *'{{'* ]]; then
    die "$file: placeholder without a value: $(grep -o '{{[A-Z0-9_]*}}' <<<"$text" | sort -u | tr '\n' ' ')"
  fi
  printf '%s\n' "$text"
}

# frr_start NODE CONFIG DAEMONS... : FRR in NODE's namespace with a private
# directory ($RUN/frr-NODE), as tests/netns/frr.cc does: each daemon with
# -f /dev/null, then `vtysh -b` hands each its part of frr.conf.
frr_start() {
  local node=$1 config=$2 dir=$RUN/frr-$1 d profile="" modules=() i
  shift 2
  mkdir -p "$dir"
  printf '%s\n' "$config" >"$dir/frr.conf"
  echo "service integrated-vtysh-config" >"$dir/vtysh.conf"
  profile=$(sed -n 's/^frr defaults //p' "$dir/frr.conf" | head -1)
  chown -R frr:frr "$dir"
  chmod 0755 "$dir"
  for d in "$@"; do
    modules=()
    [[ $d == zebra && $config == *"fpm address"* ]] && modules=(-M dplane_fpm_nl)
    : >"$LOGS/$node-$d.log"
    chown frr:frr "$LOGS/$node-$d.log"
    rm -f "$dir/$d.vty" "$dir/$d.pid"
    in_ns "$node" "/usr/lib/frr/$d" -d -f /dev/null -i "$dir/$d.pid" \
      -z "$dir/zserv.api" --vty_socket "$dir" -P 0 \
      --log "file:$LOGS/$node-$d.log" ${profile:+-F "$profile"} "${modules[@]}" \
      </dev/null >>"$LOGS/$node-$d.log" 2>&1 || die "$node: $d did not start (log: $LOGS/$node-$d.log)"
    for ((i = 0; i < 100; i++)); do
      [[ -S $dir/$d.vty && -s $dir/$d.pid ]] && break
      sleep 0.1
    done
    [[ -S $dir/$d.vty ]] || die "$node: $d has no vty socket after 10s (log: $LOGS/$node-$d.log)"
    cp "$dir/$d.pid" "$RUN/$node-$d.pid"
  done
  local out
  if ! out=$(vtysh --vty_socket "$dir" --config_dir "$dir" -b 2>&1); then
    die "$node: FRR refused lines of $dir/frr.conf: $out"
  fi
}

vtysh_in() { # vtysh_in NODE COMMAND
  vtysh --vty_socket "$RUN/frr-$1" -c "$2"
}

# --- up ----------------------------------------------------------------------
ns_exists() { ip netns list | awk '{print $1}' | grep -qxF "$1"; }

lab_is_up() {
  [[ -f $DIR/lab.env ]] && grep -q '^state=up' "$DIR/lab.env" && ns_exists "$(ns router)"
}

any_namespace() {
  local n
  for n in $(nodes); do
    ns_exists "$(ns "$n")" && return 0
  done
  return 1
}

link_to_switch() { # link_to_switch NODE DEV: NODE's DEV <-> switch port p-NODE
  ip -n "$(ns switch)" link add "p-$1" type veth peer name "$2" netns "$(ns "$1")"
  ip -n "$(ns switch)" link set "p-$1" master br0 up
  ip -n "$(ns "$1")" link set "$2" up
}

addr() { # addr NODE DEV ADDRESS/LEN
  if [[ $3 == *:* ]]; then
    ip -n "$(ns "$1")" -6 addr add "$3" dev "$2" nodad
  else
    ip -n "$(ns "$1")" addr add "$3" dev "$2"
  fi
}

sysctl_in() { in_ns "$1" sysctl -qw "$2=$3"; }

quiet_host() {
  local n=$1 k
  for k in net.ipv6.conf.all.accept_dad net.ipv6.conf.default.accept_dad \
    net.ipv4.conf.all.accept_redirects net.ipv4.conf.default.accept_redirects \
    net.ipv6.conf.all.accept_redirects net.ipv6.conf.default.accept_redirects \
    net.ipv4.conf.all.rp_filter net.ipv4.conf.default.rp_filter; do
    sysctl_in "$n" "$k" 0
  done
}

build_network() {
  local n d r i
  for n in $(nodes); do
    ip netns add "$(ns "$n")"
    ip -n "$(ns "$n")" link set lo up
    quiet_host "$n"
  done
  # The switch: one bridge, no addresses, no IPv6 chatter of its own.
  sysctl_in switch net.ipv6.conf.all.disable_ipv6 1
  sysctl_in switch net.ipv6.conf.default.disable_ipv6 1
  ip -n "$(ns switch)" link add br0 type bridge
  ip -n "$(ns switch)" link set br0 up

  # Client <-> router: a point-to-point link; the client owns several
  # addresses (many flows, as from many users).
  ip -n "$(ns router)" link add eth1 type veth peer name eth0 netns "$(ns client)"
  ip -n "$(ns router)" link set eth1 up
  ip -n "$(ns client)" link set eth0 up
  addr router eth1 "$ROUTER_CLIENT/24"
  addr router eth1 "$ROUTER_CLIENT6/64"
  for i in "${!CLIENT_ADDRS[@]}"; do
    addr client eth0 "${CLIENT_ADDRS[$i]}/24"
    addr client eth0 "2001:db8:c::1$i/64"
  done
  ip -n "$(ns client)" route add default via "$ROUTER_CLIENT"
  ip -n "$(ns client)" -6 route add default via "$ROUTER_CLIENT6"

  # The router, the directors, the real servers and the controller on the
  # bridge (198.51.100.0/24, 2001:db8:b::/64).
  link_to_switch router eth0
  addr router eth0 "$ROUTER_LAN/24"
  addr router eth0 "$ROUTER_LAN6/64"
  while read -r line; do
    line=${line%%#*}
    [[ $line == *=* ]] || continue
    sysctl_in router "$(echo "${line%%=*}" | tr -d ' ')" "$(echo "${line#*=}" | tr -d ' ')"
  done <"$FRR_TEMPLATES/sysctl-router.conf"

  link_to_switch ctl eth0
  addr ctl eth0 "$CONTROLLER_ADDR/24"

  for d in "${DIRECTORS[@]}"; do
    link_to_switch "$d" eth0
    addr "$d" eth0 "$(director_addr "$d")/24"
    addr "$d" eth0 "$(director_addr6 "$d")/64"
    ip -n "$(ns "$d")" route add default via "$ROUTER_LAN"
    ip -n "$(ns "$d")" -6 route add default via "$ROUTER_LAN6"
    # Only lbnode moves VIP packets through a director.
    sysctl_in "$d" net.ipv4.ip_forward 0
    sysctl_in "$d" net.ipv6.conf.all.forwarding 0
    # lbnode's XDP fast path sends established flows with XDP_TX: a veth
    # delivers such frames only if its peer has an XDP program (GRO on the
    # peer was not enough here).
    ip -n "$(ns switch)" link set dev "p-$d" xdpdrv obj "$BIN/deploy/lab/xdp_pass.o" sec xdp
  done
  for r in "${REAL_SERVERS[@]}"; do
    link_to_switch "$r" eth0
    addr "$r" eth0 "$(rs_addr "$r")/24"
    addr "$r" eth0 "$(rs_addr6 "$r")/64"
    ip -n "$(ns "$r")" route add default via "$ROUTER_LAN"
    ip -n "$(ns "$r")" -6 route add default via "$ROUTER_LAN6"
    # DR/TUN real server: the VIP on lo, never answering ARP for it.
    addr "$r" lo "$VIP/32"
    sysctl_in "$r" net.ipv4.conf.all.arp_ignore 1
    sysctl_in "$r" net.ipv4.conf.all.arp_announce 2
  done
  # veth leaves TCP/UDP checksums to "hardware"; AF_XDP forwards the bytes
  # as they are, so the senders compute them (a real NIC would).
  for n in client "${REAL_SERVERS[@]}"; do
    in_ns "$n" ethtool -K eth0 tx off >/dev/null
  done
  in_ns router ethtool -K eth0 tx off >/dev/null
  in_ns router ethtool -K eth1 tx off >/dev/null
}

start_controller() {
  local token
  "$REPO/deploy/make-certs.sh" "$PKI" --controller-name "$CONTROLLER_ADDR" \
    --node dir1 --node dir2 --node dir3 >"$LOGS/make-certs.log"
  if [[ ! -s $PKI/operator.token ]]; then
    token=$(openssl rand -hex 24)
    printf '%s\n' "$token" >"$PKI/operator.token"
    printf 'operator lab sha256:%s\n' "$(printf %s "$token" | sha256sum | cut -d' ' -f1)" >"$PKI/tokens"
    chmod 0600 "$PKI/operator.token" "$PKI/tokens"
  fi
  mkdir -p "$RUN/controller"
  spawn ctl controller "$BIN/controller/anylb_controller" \
    "--listen=$CONTROLLER" "--store=$RUN/controller/store.db" \
    "--tls_cert=$PKI/controller.crt" "--tls_key=$PKI/controller.key" \
    "--client_ca=$PKI/ca.crt" "--token_file=$PKI/tokens" \
    --metrics_address=127.0.0.1:9465
  wait_for_log ctl controller "listening on" 20
}

nginx_conf() { # nginx_conf NAME DIR
  cat <<EOF
# Generated by deploy/lab/lab.sh (as tests/netns/nginx_server.cc).
daemon off;
master_process on;
user root;
worker_processes 1;
pid $2/nginx.pid;
error_log $LOGS/$1-nginx-error.log warn;
events { worker_connections 1024; }
http {
  log_format lab '\$remote_addr \$server_addr \$request_uri \$status \$body_bytes_sent';
  access_log $LOGS/$1-nginx-access.log lab;
  client_body_temp_path $2/tmp/body;
  proxy_temp_path $2/tmp/proxy;
  fastcgi_temp_path $2/tmp/fastcgi;
  uwsgi_temp_path $2/tmp/uwsgi;
  scgi_temp_path $2/tmp/scgi;
  default_type application/octet-stream;
  keepalive_timeout 0;
  server {
    listen $VIP_PORT reuseport;
    listen [::]:$VIP_PORT ipv6only=on reuseport;
    root $2/www;
    add_header X-Server $1 always;
    location = /id {
      default_type text/plain;
      return 200 "$1";
    }
    # 1 MiB of random bytes, the same on every real server, sent at
    # 256 KiB/s: a download that lasts about 4 s.
    location = /big {
      limit_rate 256k;
    }
  }
}
EOF
}

start_real_servers() {
  local r dir
  head -c 1048576 /dev/urandom >"$RUN/big"
  for r in "${REAL_SERVERS[@]}"; do
    dir=$RUN/nginx-$r
    mkdir -p "$dir/www" "$dir/tmp"
    cp "$RUN/big" "$dir/www/big"
    nginx_conf "$r" "$dir" >"$dir/nginx.conf"
    spawn "$r" nginx nginx -p "$dir/" -e "$LOGS/$r-nginx-error.log" -c "$dir/nginx.conf"
    # TUN: no ipip module here, so anylb's decapsulation program.
    spawn "$r" decap "$BIN/lbnode/dataplane/bpf/lb_decap" --interface=eth0 \
      --mode=tc "--local=$(rs_addr "$r"),$(rs_addr6 "$r")"
  done
  for r in "${REAL_SERVERS[@]}"; do
    wait_for_log "$r" decap "decapsulating on" 15
    local i
    for ((i = 0; i < 100; i++)); do
      in_ns "$r" curl -s -o /dev/null --max-time 1 "http://$(rs_addr "$r"):$VIP_PORT/id" && break
      alive "$r" nginx || die "$r: nginx exited (log: $LOGS/$r-nginx.log, $LOGS/$r-nginx-error.log)"
      sleep 0.1
    done
  done
}

start_router_frr() {
  local config
  config=$(expand "$FRR_TEMPLATES/router-bgp.conf" HOSTNAME=router \
    ROUTER_AS=$ROUTER_AS ROUTER_ID=$ROUTER_LAN BGP_KEEPALIVE=1 BGP_HOLD=3 \
    VIP_RANGE_V4=192.0.2.0/24 VIP_RANGE_V6=2001:db8:f::/48 \
    DIRECTOR_LINKS_V4=$LAN_PREFIX.0/24 DIRECTOR_LINKS_V6=2001:db8:b::/64 \
    MAXIMUM_PATHS=16)
  config+=$'\n'$(bfd_config)
  frr_start router "$config" zebra bgpd bfdd
}

# BFD 3 x 300 ms: the 100 ms of the templates' tests flap on a busy 2-core
# machine running the whole lab.
bfd_config() { expand "$FRR_TEMPLATES/bfd-profile.conf" BFD_MULTIPLIER=3 BFD_INTERVAL_MS=300; }

start_director_frr() { # start_director_frr dirN
  local d=$1 i=${1#dir} config
  config=$(expand "$FRR_TEMPLATES/director-bgp.conf" HOSTNAME="$d" \
    DIRECTOR_AS=$((ROUTER_AS + i)) ROUTER_ID="$(director_addr "$d")" \
    BGP_KEEPALIVE=1 BGP_HOLD=3 UPSTREAM_V4=$ROUTER_LAN UPSTREAM_V6=$ROUTER_LAN6)
  config+=$'\n'$(bfd_config)
  config+=$'\n'$(expand "$FRR_TEMPLATES/director-fpm.conf" FPM_PORT=2620)
  frr_start "$d" "$config" zebra bgpd bfdd
}

start_lbnode() { # start_lbnode dirN
  local d=$1
  mkdir -p "$RUN/lbnode-$d"
  spawn "$d" lbnode "$BIN/lbnode/lbnode" --interface=eth0 \
    "--controller=$CONTROLLER" "--controller_ca=$PKI/ca.crt" \
    "--node_cert=$PKI/node-$d.crt" "--node_key=$PKI/node-$d.key" \
    "--node_name=$d" "--snapshot_cache=$RUN/lbnode-$d/snapshot.pb" \
    --report_interval=1s --metrics_address=127.0.0.1:9464 \
    --announce --announce_protocols=bgp "--frr_vty_socket=$RUN/frr-$d" \
    --route_source=fpm --fpm_listen=127.0.0.1:2620
}

lab_up() {
  need_root
  if lab_is_up && ((FORCE == 0)); then
    say "the lab is already up (namespaces $(ns '*'), state in $DIR)"
    say "see it with: $0 ${NAME:+--name $NAME }status; rebuild with: $0 ${NAME:+--name $NAME }--force up"
    return 0
  fi
  # A rebuilt lab keeps the binaries of the one it replaces.
  if [[ -z $BIN && -f $DIR/lab.env ]]; then
    BIN=$(sed -n 's/^bin=//p' "$DIR/lab.env")
  fi
  if any_namespace || [[ -d $DIR ]]; then
    say "removing what is left of a previous lab first"
    lab_down
  fi
  check_tools
  mkdir -p "$DIR"
  chmod 0755 "$DIR"
  resolve_bin
  mkdir -p "$LOGS" "$RUN"
  chmod 0755 "$LOGS" "$RUN"
  printf 'state=starting\nname=%s\nbin=%s\n' "$NAME" "$BIN" >"$DIR/lab.env"
  # A failure half-way leaves nothing behind.
  trap 'status=$?; if ((status != 0)); then echo "lab: up failed; removing the half-built lab (logs kept in $LOGS)" >&2; KEEP_LOGS=1 lab_down >/dev/null 2>&1 || true; fi' EXIT
  trap 'exit 130' INT TERM HUP

  say "[1/6] namespaces and links: client, router, switch, ctl, ${DIRECTORS[*]}, ${REAL_SERVERS[*]}"
  build_network
  say "[2/6] controller on $CONTROLLER (TLS, node certificates, operator token)"
  start_controller
  say "[3/6] real servers: nginx on :$VIP_PORT, lb_decap, VIP $VIP on lo"
  start_real_servers
  say "[4/6] FRR on the router (AS $ROUTER_AS, multipath, L4 hash)"
  start_router_frr
  say "[5/6] FRR on the directors (BGP + FPM) and lbnode --announce"
  local d
  for d in "${DIRECTORS[@]}"; do
    start_director_frr "$d"
    start_lbnode "$d"
  done
  for d in "${DIRECTORS[@]}"; do
    wait_for_log "$d" lbnode "lbnode running" 30
    wait_for_log "$d" lbnode "connected as node $d" 30
  done
  # lbnode drops (and counts, no_neighbor) a packet whose next hop the
  # kernel has not resolved yet, and the client retransmits a second later:
  # resolve the real servers and the router now so the first requests are
  # not slow.
  local r pings=()
  for d in "${DIRECTORS[@]}"; do
    for r in "${REAL_SERVERS[@]}"; do
      in_ns "$d" ping -c 1 -W 1 -q "$(rs_addr "$r")" >/dev/null 2>&1 &
      pings+=($!)
    done
  done
  wait "${pings[@]}" || true
  say "[6/6] waiting for the router's BGP sessions"
  local i up=0
  for ((i = 0; i < 300; i++)); do
    up=$(vtysh_in router "show bgp ipv4 unicast summary json" 2>/dev/null | grep -o '"state":"Established"' | wc -l)
    ((up >= ${#DIRECTORS[@]})) && break
    sleep 0.1
  done
  ((up >= ${#DIRECTORS[@]})) || {
    vtysh_in router "show bgp ipv4 unicast summary" >&2 || true
    die "only $up of ${#DIRECTORS[@]} directors have a BGP session with the router after 30s (logs: $LOGS)"
  }
  sed -i 's/^state=.*/state=up/' "$DIR/lab.env"
  trap - EXIT INT TERM HUP
  say "up: ${#DIRECTORS[@]} directors peered with the router; logs in $LOGS"
  say "next: $0 ${NAME:+--name $NAME }service tun   (VIP $VIP:$VIP_PORT over rs1-4)"
}

# --- down --------------------------------------------------------------------
lab_down() {
  need_root
  local names=() n pids pass i
  if ((ALL)); then
    mapfile -t names < <(ip netns list | awk '{print $1}' | grep '^anylb-lab-' || true)
  else
    for n in $(nodes); do
      ns_exists "$(ns "$n")" && names+=("$(ns "$n")")
    done
  fi
  # Every process inside: SIGTERM (lbnode detaches XDP, FRR withdraws),
  # then SIGKILL what is left after 5 s.
  for pass in TERM KILL; do
    for n in "${names[@]}"; do
      pids=$(ip netns pids "$n" 2>/dev/null || true)
      # shellcheck disable=SC2086 # one pid per word
      if [[ -n $pids ]]; then kill -s "$pass" $pids 2>/dev/null || true; fi
    done
    for ((i = 0; i < 50; i++)); do
      pids=""
      for n in "${names[@]}"; do pids+=$(ip netns pids "$n" 2>/dev/null || true); done
      [[ -z $pids ]] && break
      sleep 0.1
    done
    [[ -z $pids ]] && break
  done
  for n in "${names[@]}"; do
    ip netns del "$n" 2>/dev/null || true
  done
  if [[ -n ${KEEP_LOGS:-} ]]; then
    rm -rf "$RUN"
    [[ -f $DIR/lab.env ]] && sed -i 's/^state=.*/state=failed/' "$DIR/lab.env"
  elif [[ -d $DIR ]]; then
    # Only what the lab wrote (lab.env marks the folder as the lab's).
    if [[ -f $DIR/lab.env || -d $LOGS || -d $RUN ]]; then rm -rf "$DIR"; fi
  fi
  local left=""
  for n in "${names[@]}"; do ns_exists "$n" && left+=" $n"; done
  say "down: removed ${#names[@]} namespace(s)${left:+; still there: $left}"
}

# --- status ------------------------------------------------------------------
lab_status() {
  need_root
  if ! any_namespace; then
    say "no lab is running (namespaces $(ns '*'))"
    return 3
  fi
  local n tag line ok=1
  if [[ ! -f $DIR/lab.env ]]; then
    say "the lab's namespaces exist but its state folder $DIR does not (crashed or deleted?): $0 ${NAME:+--name $NAME }down removes them"
    ok=0
  fi
  echo "namespaces:"
  for n in $(nodes); do
    if ns_exists "$(ns "$n")"; then
      line="  $(ns "$n"):"
      [[ -d $RUN ]] || line+=" $(ip netns pids "$(ns "$n")" | wc -l) process(es)"
      for f in "$RUN/$n"-*.pid; do
        [[ -f $f ]] || continue
        tag=${f##*/"$n"-}
        tag=${tag%.pid}
        if alive "$n" "$tag"; then line+=" $tag(up)"; else line+=" $tag(DOWN)"; ok=0; fi
      done
      echo "$line"
    else
      echo "  $(ns "$n"): MISSING"
      ok=0
    fi
  done
  echo "router: BGP sessions"
  vtysh_in router "show bgp ipv4 unicast summary" 2>/dev/null |
    awk '/^Neighbor/ {p=1} p && NF {print "  " $0}' || true
  echo "router: kernel route to the VIP"
  router_route | sed 's/^/  /'
  echo "controller: services (lbctl -Ln)"
  if [[ -f $DIR/lab.env ]]; then lab_lbctl -Ln 2>&1 | sed 's/^/  /' || true; fi
  echo "logs: $LOGS"
  ((ok)) || { say "something is DOWN (see above)"; return 1; }
}

router_route() {
  local r
  r=$(ip -n "$(ns router)" route show "$VIP" 2>/dev/null)
  [[ -n $r ]] && echo "$r" || echo "(no route to $VIP: no director announces it)"
}

# --- operator commands -------------------------------------------------------
lab_lbctl() {
  resolve_bin_quiet
  in_ns ctl "$BIN/controller/lbctl/lbctl" "--controller=$CONTROLLER" \
    "--ca=$PKI/ca.crt" "--token_file=$PKI/operator.token" "$@"
}

resolve_bin_quiet() {
  [[ -n $BIN ]] || BIN=$(sed -n 's/^bin=//p' "$DIR/lab.env" 2>/dev/null || true)
  [[ -n $BIN ]] || die "no lab state in $DIR (is the lab up? give --dir or --name)"
}

# FULLNAT local-address pool of each director: inside the router's anycast
# range (192.0.2.0/24, beside the VIP), one /28 each; the router learns
# them by BGP, so a real server's reply to a local address (by its default
# route, the router) reaches the director that owns the flow.
local_prefix() { echo "192.0.2.$((48 + 16 * ${1#dir}))/28"; } # dir1 .64/28, dir2 .80/28, dir3 .96/28
CLIENT_NET=203.0.113.0/24

# lab_service MODE: the VIP's service in one forwarding mode.
#   tun, dr: every director, replies straight from the real servers.
#   fullnat: every director, each with its own local-address pool
#     (lbctl node-local-addresses) announced to the router.
#   nat: NAT replies must pass back through the director that holds the
#     flow, and a real server has one gateway: the smallest honest NAT is
#     one director (dir1) as the real servers' route to the clients, with
#     lbnode stopped on dir2 and dir3 (the router then sends every flow to
#     dir1). NAT is single-director by nature; FULLNAT is the fleet's NAT.
#     Another mode afterwards starts the directors `service nat` stopped.
lab_service() {
  need_root
  resolve_bin_quiet
  local mode=${1:-tun} flag r d
  case $mode in
    tun) flag=-i ;;
    dr) flag=-g ;;
    nat) flag=-m ;;
    fullnat) flag=--fullnat ;;
    *) die "service: mode \"$mode\": tun, dr, nat or fullnat" ;;
  esac
  if lab_lbctl -L -t "$VIP:$VIP_PORT" >/dev/null 2>&1; then
    echo "+ lbctl -D -t $VIP:$VIP_PORT"
    lab_lbctl -D -t "$VIP:$VIP_PORT"
  fi
  if [[ $mode == nat ]]; then
    for r in "${REAL_SERVERS[@]}"; do
      echo "+ $r: ip route replace $CLIENT_NET via $(director_addr dir1)"
      ip -n "$(ns "$r")" route replace "$CLIENT_NET" via "$(director_addr dir1)"
    done
    for d in "${DIRECTORS[@]:1}"; do
      if alive "$d" lbnode; then
        echo "+ stop lbnode on $d (NAT: dir1 only)"
        kill "$(cat "$RUN/$d-lbnode.pid")"
        echo "$d" >>"$RUN/nat-stopped"
      fi
    done
    for d in "${DIRECTORS[@]:1}"; do
      local i
      for ((i = 0; i < 100; i++)); do alive "$d" lbnode || break; sleep 0.1; done
    done
  else
    for r in "${REAL_SERVERS[@]}"; do
      ip -n "$(ns "$r")" route del "$CLIENT_NET" 2>/dev/null || true
    done
    if [[ -f $RUN/nat-stopped ]]; then
      for d in $(sort -u "$RUN/nat-stopped"); do
        alive "$d" lbnode && continue
        echo "+ start lbnode on $d again"
        mv -f "$LOGS/$d-lbnode.log" "$LOGS/$d-lbnode.log.1" 2>/dev/null || true
        start_lbnode "$d"
        wait_for_log "$d" lbnode "connected as node $d" 30
      done
      rm -f "$RUN/nat-stopped"
    fi
  fi
  if [[ $mode == fullnat ]]; then
    for d in "${DIRECTORS[@]}"; do
      echo "+ lbctl node-local-addresses $d $(local_prefix "$d")"
      lab_lbctl node-local-addresses "$d" "$(local_prefix "$d")" >/dev/null
    done
  fi
  echo "+ lbctl -A -t $VIP:$VIP_PORT -s mh $flag"
  lab_lbctl -A -t "$VIP:$VIP_PORT" -s mh "$flag"
  for r in "${REAL_SERVERS[@]}"; do
    echo "+ lbctl -a -t $VIP:$VIP_PORT -r $(rs_addr "$r"):$VIP_PORT $flag -w 1"
    lab_lbctl -a -t "$VIP:$VIP_PORT" -r "$(rs_addr "$r"):$VIP_PORT" "$flag" -w 1
  done
  # Announced once every director has it: the router's route has one next
  # hop per live director (and, for FULLNAT, a route to each live
  # director's local addresses).
  local i want hops ok
  want=$(live_directors)
  for ((i = 0; i < 300; i++)); do
    hops=$(router_hops)
    ok=1
    # NAT: also until the stopped directors have left the route.
    ((hops >= want)) || ok=0
    [[ $mode == nat ]] && ((hops != want)) && ok=0
    if [[ $mode == fullnat ]]; then
      for d in "${DIRECTORS[@]}"; do
        alive "$d" lbnode || continue
        ip -n "$(ns router)" route show "$(local_prefix "$d")" | grep -q "via $(director_addr "$d")" || ok=0
      done
    fi
    ((ok)) && break
    sleep 0.1
  done
  ((hops >= want)) && [[ $mode != nat || $hops == "$want" ]] || die "service: the router has $hops next hops to $VIP after 30s, want $want"
  ((ok)) || die "service fullnat: the router has no route to some director's local addresses after 30s: $(ip -n "$(ns router)" route show 192.0.2.0/24 | tr '\n' ';')"
}

live_directors() {
  local d n=0
  for d in "${DIRECTORS[@]}"; do alive "$d" lbnode && n=$((n + 1)); done
  echo "$n"
}

router_hops() {
  local r
  r=$(ip -n "$(ns router)" route show "$VIP" 2>/dev/null)
  if [[ -z $r ]]; then echo 0
  elif [[ $r == *nexthop* ]]; then grep -c nexthop <<<"$r"
  else echo 1
  fi
}

lab_exec() {
  [[ $# -ge 2 ]] || die "exec NODE CMD...: NODE is one of: $(nodes)"
  local n=$1
  shift
  in_ns "$n" "$@"
}

# lab_traffic N [RATE]: N GETs of /id from each client address, in
# parallel, each a new TCP connection (many source ports); RATE (curl's
# --rate, e.g. 50/s) per address. Prints one line per request:
# "<server> <http code> <seconds>" (server empty and code 000: failed).
lab_traffic() {
  local n=${1:-100} rate=${2:-} out=/dev/stdout a tmp jobs=()
  [[ $n =~ ^[0-9]+$ ]] || die "traffic N [RATE]: N is a number of requests per client address"
  tmp=$(mktemp -d)
  for a in "${CLIENT_ADDRS[@]}"; do
    in_ns client curl -s --interface "$a" --connect-timeout 3 --max-time 5 ${rate:+--rate "$rate"} \
      -w ' %{http_code} %{time_total}\n' "http://$VIP:$VIP_PORT/id?[1-$n]" \
      >"$tmp/$a" 2>/dev/null &
    jobs+=($!)
  done
  wait "${jobs[@]}" || true
  cat "$tmp"/* >"$out"
  rm -rf "$tmp"
}

# director_flows dirN: new flows lbnode on dirN has scheduled (all
# services); nothing (and status 1) when its /metrics does not answer.
director_flows() {
  local metrics
  metrics=$(in_ns "$1" curl -s --fail --max-time 2 http://127.0.0.1:9464/metrics 2>/dev/null) || return 1
  awk '/^anylb_service_new_flows_total/ {s += $NF} END {printf "%d\n", s}' <<<"$metrics"
}

case $COMMAND in
  up) lab_up ;;
  down) lab_down ;;
  status) lab_status ;;
  service) lab_service "$@" ;;
  lbctl) need_root; lab_lbctl "$@" ;;
  exec) need_root; lab_exec "$@" ;;
  traffic) need_root; lab_traffic "$@" ;;
  flows) need_root; director_flows "$@" ;;
  route) need_root; router_route ;;
  kill-lbnode)
    need_root
    [[ $# -eq 1 && " ${DIRECTORS[*]} " == *" $1 "* ]] || die "kill-lbnode dirN"
    kill -9 "$(cat "$RUN/$1-lbnode.pid")"
    ;;
  start-lbnode)
    need_root
    [[ $# -eq 1 && " ${DIRECTORS[*]} " == *" $1 "* ]] || die "start-lbnode dirN"
    resolve_bin_quiet
    alive "$1" lbnode && die "$1: lbnode is running already"
    mv -f "$LOGS/$1-lbnode.log" "$LOGS/$1-lbnode.log.1" 2>/dev/null || true
    start_lbnode "$1"
    wait_for_log "$1" lbnode "lbnode running" 30
    ;;
  *) echo "lab: unknown command \"$COMMAND\" (lab.sh --help)" >&2; exit 2 ;;
esac
