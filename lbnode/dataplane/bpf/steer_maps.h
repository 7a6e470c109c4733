// steer_maps.h: the maps of the director's XDP steering program. Layouts and
// names come from steer_structs.h, which the C++ loader shares.

#ifndef ANYLB_LBNODE_DATAPLANE_BPF_STEER_MAPS_H_
#define ANYLB_LBNODE_DATAPLANE_BPF_STEER_MAPS_H_

// libbpf's headers use the uapi types: linux/* first.
// clang-format off
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
// clang-format on

#include "steer_structs.h"

// steer_vips: destinations (VIP, port, proto) the engine serves.
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __type(key, struct anylb_steer_l4_key);
  __type(value, struct anylb_steer_value);
  __uint(max_entries, ANYLB_STEER_MAX_VIPS);
} steer_vips SEC(".maps");

// steer_vip_addrs: the addresses of steer_vips, for the decisions that have
// no port (ICMP, fragments).
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __type(key, struct anylb_steer_addr_key);
  __type(value, struct anylb_steer_value);
  __uint(max_entries, ANYLB_STEER_MAX_VIP_ADDRS);
} steer_vip_addrs SEC(".maps");

// steer_locals: FULLNAT local addresses (sources of the director's
// connections to real servers, so the replies come back to them).
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __type(key, struct anylb_steer_addr_key);
  __type(value, struct anylb_steer_value);
  __uint(max_entries, ANYLB_STEER_MAX_LOCALS);
} steer_locals SEC(".maps");

// steer_nat_backends: real servers of NAT-mode services, by source.
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __type(key, struct anylb_steer_l4_key);
  __type(value, struct anylb_steer_value);
  __uint(max_entries, ANYLB_STEER_MAX_NAT_BACKENDS);
} steer_nat_backends SEC(".maps");

// xsks_map: the AF_XDP socket of each RX queue.
struct {
  __uint(type, BPF_MAP_TYPE_XSKMAP);
  __type(key, __u32);
  __type(value, __u32);
  __uint(max_entries, ANYLB_STEER_MAX_QUEUES);
} xsks_map SEC(".maps");

// steer_counters counts frames per decision, per CPU (no atomics).
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __type(key, __u32);
  __type(value, __u64);
  __uint(max_entries, ANYLB_STEER_CNT_MAX);
} steer_counters SEC(".maps");

// fastpath_flows: established DR/TUN flows and their rewrite (steer_structs.h).
// LRU: when full, the kernel evicts the least recently used flow, whose
// packets then go through AF_XDP again. The loader may resize it.
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __type(key, struct anylb_fastpath_key);
  __type(value, struct anylb_fastpath_value);
  __uint(max_entries, ANYLB_FASTPATH_DEFAULT_FLOWS);
} fastpath_flows SEC(".maps");

// fastpath_tx_ports: egress interfaces other than the RX one, by ifindex.
struct {
  __uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
  __type(key, __u32);
  __type(value, __u32);
  __uint(max_entries, ANYLB_FASTPATH_MAX_TX_PORTS);
} fastpath_tx_ports SEC(".maps");

// fastpath_generations: per RX queue, the generation its worker's entries
// must carry to be used (bumped on every snapshot swap).
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __type(key, __u32);
  __type(value, __u32);
  __uint(max_entries, ANYLB_STEER_MAX_QUEUES);
} fastpath_generations SEC(".maps");

// fastpath_traffic: packets and bytes per (queue, service, backend) slot.
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __type(key, __u32);
  __type(value, struct anylb_fastpath_traffic);
  __uint(max_entries, ANYLB_STEER_MAX_QUEUES * ANYLB_FASTPATH_SLOTS_PER_QUEUE);
} fastpath_traffic SEC(".maps");

// steer_count adds one to counter `index` on this CPU.
static __always_inline void steer_count(__u32 index) {
  __u64* value = bpf_map_lookup_elem(&steer_counters, &index);
  if (value) *value += 1;
}

#endif  // ANYLB_LBNODE_DATAPLANE_BPF_STEER_MAPS_H_
