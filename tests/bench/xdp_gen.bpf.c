// xdp_gen.bpf.c: pps_bench's traffic generator.
//
// Run with BPF_PROG_TEST_RUN in live-frames mode (BPF_F_TEST_XDP_LIVE_FRAMES)
// on the generator's template frame: each run gives the frame the next of
// 256 UDP source ports (0x3000-0x30ff, so lbnode sees 256 flows) and
// redirects it out of the generator's veth (gen_config.ifindex), the kernel
// transmitting it with ndo_xdp_xmit. This sends several times faster than an
// AF_PACKET socket on one core, so the director, not the sender, is what
// pps_bench measures. The UDP checksum is 0 (none), so no fix-up is needed.
// Each frame's headers are written again from gen_config.header: the pages
// are recycled and keep what a forwarder wrote into them in place (a TUN
// forwarder's outer header lands on the Ethernet header).

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>

#include <bpf/bpf_helpers.h>

#include "xdp_bench_structs.h"

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct gen_config);
} gen_config SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
} gen_stats SEC(".maps");

SEC("xdp")
int xdp_gen(struct xdp_md* ctx) {
  void* data = (void*)(long)ctx->data;
  void* data_end = (void*)(long)ctx->data_end;
  __u32 zero = 0;
  struct gen_config* config = bpf_map_lookup_elem(&gen_config, &zero);
  __u64* sent = bpf_map_lookup_elem(&gen_stats, &zero);
  if (!config || !sent) return XDP_ABORTED;
  struct udphdr* udp = data + sizeof(struct ethhdr) + sizeof(struct iphdr);
  if ((void*)(udp + 1) > data_end) return XDP_ABORTED;
  // Live frames come from recycled pages that keep what a forwarder wrote
  // into them: start every frame from the template's headers again.
  __builtin_memcpy(data, config->header, GEN_HEADER_LEN);
  ((__u8*)&udp->source)[1] = (__u8)*sent;
  *sent += 1;
  return bpf_redirect(config->ifindex, 0);
}

char LICENSE[] SEC("license") = "GPL";
