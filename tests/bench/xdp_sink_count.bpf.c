// xdp_sink_count.bpf.c: counts and drops every frame on pps_bench's sink.
//
// Counting at XDP (before any skb exists) makes the sink as cheap as it can
// be, so the figure measures the director, not the sink. Being an XDP
// program it also lets the sink's veth receive frames its peer redirects
// (see tests/netns/README.md). sink_stats[0] counts frames per CPU.

#include <linux/bpf.h>

#include <bpf/bpf_helpers.h>

#include "xdp_bench_structs.h"

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
} sink_stats SEC(".maps");

SEC("xdp")
int xdp_sink_count(struct xdp_md* ctx) {
  (void)ctx;
  __u32 zero = 0;
  __u64* frames = bpf_map_lookup_elem(&sink_stats, &zero);
  if (frames) *frames += 1;
  return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
