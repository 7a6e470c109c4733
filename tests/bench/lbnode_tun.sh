#!/bin/sh
# A pps_bench --lbnode_tun_cmd: lbnode in TUN mode (IPIP, VIP -> the sink;
# the sink does not decapsulate, its XDP counter counts the encapsulated
# frames), one worker (queue 0) pinned to $LB_CPU, receiving on $LB_IN_IF
# and sending on $LB_OUT_IF. The outer source is in0's address. $LBNODE
# is the lbnode binary (default: lbnode on PATH):
#   pps_bench --lbnode_tun_cmd="LBNODE=$PWD/bazel-bin/lbnode/lbnode $PWD/tests/bench/lbnode_tun.sh"
# LB_METRICS=127.0.0.1:9464 serves /metrics (anylb_fastpath_*) in the
# director namespace; unset: none. LB_FLAGS: more lbnode flags
# (--fast_path=false: everything through AF_XDP).
set -e
dir=${LB_WORK_DIR:?run me from pps_bench --lbnode_tun_cmd}
cat > $dir/lbnode.yaml <<YAML
revision: 1
node:
  node_name: bench
services:
  - name: bench
    vip: "$LB_VIP"
    port: $LB_PORT
    protocol: udp
    scheduler: mh
    forwarding: {mode: tun, tunnel_type: ipip}
    backends:
      - {address: "$LB_SINK_IP", port: $LB_PORT, weight: 1, forwarding: {mode: tun, tunnel_type: ipip}}
YAML
exec taskset -c $LB_CPU ${LBNODE:-lbnode} --interface=$LB_IN_IF --tx_interface=$LB_OUT_IF --queues=0 --config=$dir/lbnode.yaml --metrics_address=${LB_METRICS:-} --log_level=info ${LB_FLAGS:-}
