#!/bin/sh
# pps_bench --lbnode_cmd: lbnode in DR mode, VIP -> the sink, one worker.
set -e
dir=$(mktemp -d /tmp/lbnode-bench-XXXXXX)
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
exec taskset -c $LB_CPU ${LBNODE:-lbnode} --interface=$LB_IN_IF --tx_interface=$LB_OUT_IF --queues=0 --config=$dir/lbnode.yaml --metrics_address= --log_level=info
