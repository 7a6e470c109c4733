// decap_maps.h: the maps of the real-server decapsulation program. Layouts
// and names come from decap_structs.h, which the C++ loader shares.

#ifndef ANYLB_LBNODE_DATAPLANE_BPF_DECAP_MAPS_H_
#define ANYLB_LBNODE_DATAPLANE_BPF_DECAP_MAPS_H_

// libbpf's headers use the uapi types: linux/* first.
// clang-format off
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
// clang-format on

#include "decap_structs.h"

// decap_dsts holds this server's addresses that tunnelled packets are sent
// to; only packets whose outer destination is listed are decapsulated.
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __type(key, struct anylb_decap_dst_key);
  __type(value, struct anylb_decap_dst_value);
  __uint(max_entries, ANYLB_DECAP_MAX_DSTS);
} decap_dsts SEC(".maps");

// decap_gue_ports holds the UDP destination ports (host order) carrying GUE.
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __type(key, __u16);
  __type(value, __u8);
  __uint(max_entries, ANYLB_DECAP_MAX_GUE_PORTS);
} decap_gue_ports SEC(".maps");

// decap_counters counts packets per outcome, per CPU (no atomics).
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __type(key, __u32);
  __type(value, __u64);
  __uint(max_entries, ANYLB_DECAP_CNT_MAX);
} decap_counters SEC(".maps");

// decap_count adds one to counter `index` on this CPU.
static __always_inline void decap_count(__u32 index) {
  __u64* value = bpf_map_lookup_elem(&decap_counters, &index);
  if (value) *value += 1;
}

#endif  // ANYLB_LBNODE_DATAPLANE_BPF_DECAP_MAPS_H_
