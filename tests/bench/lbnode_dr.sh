#!/bin/sh
# A pps_bench --lbnode_cmd: lbnode in DR mode (VIP -> the sink), one worker
# (queue 0) pinned to $LB_CPU, receiving on $LB_IN_IF and sending on
# $LB_OUT_IF. $LBNODE is the lbnode binary (default: lbnode on PATH):
#   pps_bench --lbnode_cmd="LBNODE=$PWD/bazel-bin/lbnode/lbnode $PWD/tests/bench/lbnode_dr.sh"
# LB_METRICS=127.0.0.1:9464 serves /metrics (anylb_fastpath_*) in the
# director namespace; unset: none. LB_FLAGS: more lbnode flags
# (--fast_path=false: everything through AF_XDP).
set -e
dir=${LB_WORK_DIR:?run me from pps_bench --lbnode_cmd}
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
    forwarding: {mode: dr}
    backends:
      - {address: "$LB_SINK_IP", port: $LB_PORT, weight: 1, forwarding: {mode: dr}}
YAML
exec taskset -c $LB_CPU ${LBNODE:-lbnode} --interface=$LB_IN_IF --tx_interface=$LB_OUT_IF --queues=0 --config=$dir/lbnode.yaml --metrics_address=${LB_METRICS:-} --log_level=info ${LB_FLAGS:-}
