// xdp_tx_probe.bpf.c: sends IPv4 UDP frames to port 9 (discard) back out of
// the interface they arrived on with XDP_TX, unchanged; passes the rest.
//
// lab_test uses it to show what a veth needs for XDP_TX: the bounced frames
// reach the peer only while the peer has an XDP program of its own.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_tx_probe(struct xdp_md* ctx) {
  void* data = (void*)(long)ctx->data;
  void* data_end = (void*)(long)ctx->data_end;
  struct ethhdr* eth = data;
  if ((void*)(eth + 1) > data_end) return XDP_PASS;
  if (eth->h_proto != bpf_htons(ETH_P_IP)) return XDP_PASS;
  struct iphdr* ip = (void*)(eth + 1);
  if ((void*)(ip + 1) > data_end || ip->ihl != 5) return XDP_PASS;
  if (ip->protocol != IPPROTO_UDP) return XDP_PASS;
  struct udphdr* udp = (void*)(ip + 1);
  if ((void*)(udp + 1) > data_end) return XDP_PASS;
  return udp->dest == bpf_htons(9) ? XDP_TX : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
