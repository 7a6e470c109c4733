// xdp_fwd_baseline.bpf.c: the in-kernel ceiling for pps_bench's veth path.
//
// The least an XDP load balancer in DR mode must do per packet: parse
// Ethernet + IPv4 + UDP, match the VIP and port, rewrite both MAC addresses
// (DR: the IP packet is untouched) and send the frame out of the director's
// sink-side veth with XDP_REDIRECT through a devmap. Everything else goes to
// the kernel. No flow table, no scheduling: lbnode does more, so this is an
// upper bound for it on the same path.
//
// Maps (filled by pps_bench): fwd_config[0] (struct fwd_config), and
// fwd_ports[0] = the egress ifindex. fwd_stats[0] counts forwarded frames
// (per CPU).

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "xdp_bench_structs.h"

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct fwd_config);
} fwd_config SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_DEVMAP);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u32);
} fwd_ports SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
} fwd_stats SEC(".maps");

SEC("xdp")
int xdp_fwd_baseline(struct xdp_md* ctx) {
  void* data = (void*)(long)ctx->data;
  void* data_end = (void*)(long)ctx->data_end;
  __u32 zero = 0;
  struct fwd_config* config = bpf_map_lookup_elem(&fwd_config, &zero);
  if (!config) return XDP_PASS;
  struct ethhdr* eth = data;
  if ((void*)(eth + 1) > data_end) return XDP_PASS;
  if (eth->h_proto != bpf_htons(ETH_P_IP)) return XDP_PASS;
  struct iphdr* ip = (void*)(eth + 1);
  if ((void*)(ip + 1) > data_end || ip->ihl != 5) return XDP_PASS;
  if (ip->daddr != config->vip || ip->protocol != IPPROTO_UDP) {
    return XDP_PASS;
  }
  struct udphdr* udp = (void*)(ip + 1);
  if ((void*)(udp + 1) > data_end || udp->dest != config->port) {
    return XDP_PASS;
  }
  __builtin_memcpy(eth->h_dest, config->dst_mac, ETH_ALEN);
  __builtin_memcpy(eth->h_source, config->src_mac, ETH_ALEN);
  __u64* forwarded = bpf_map_lookup_elem(&fwd_stats, &zero);
  if (forwarded) *forwarded += 1;
  return bpf_redirect_map(&fwd_ports, 0, 0);
}

char LICENSE[] SEC("license") = "GPL";
