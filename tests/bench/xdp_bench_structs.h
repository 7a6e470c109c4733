// xdp_bench_structs.h: the layouts shared by the bench's BPF programs
// (xdp_fwd_baseline.bpf.c, xdp_gen.bpf.c) and pps_bench.cc.

#ifndef ANYLB_TESTS_BENCH_XDP_BENCH_STRUCTS_H_
#define ANYLB_TESTS_BENCH_XDP_BENCH_STRUCTS_H_

#include <linux/types.h>

// fwd_config is xdp_fwd_baseline's only configuration: frames to vip:port
// (UDP, network byte order) leave with these MAC addresses.
struct fwd_config {
  __be32 vip;
  __be16 port;
  __u8 dst_mac[6];
  __u8 src_mac[6];
  __u8 pad[2];
};

// GEN_HEADER_LEN: Ethernet + IPv4 + UDP of the generator's frames.
#define GEN_HEADER_LEN 42

// gen_config configures xdp_gen: the interface its frames leave by, and
// the frame's headers, which it writes into every frame it sends (a
// forwarder that rewrites frames in place writes into the generator's
// recycled pages: DR's MACs are harmless, TUN's outer header overwrites
// the Ethernet header of the next frame sent from that page).
struct gen_config {
  __u32 ifindex;
  __u8 header[GEN_HEADER_LEN];
  __u8 pad[2];
};

#ifdef __cplusplus
static_assert(sizeof(struct fwd_config) == 20, "fwd_config layout");
static_assert(sizeof(struct gen_config) == 48, "gen_config layout");
#endif

#endif  // ANYLB_TESTS_BENCH_XDP_BENCH_STRUCTS_H_
