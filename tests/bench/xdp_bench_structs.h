// xdp_bench_structs.h: the one layout shared by xdp_fwd_baseline.bpf.c and
// pps_bench.cc (C, included by both).

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

#ifdef __cplusplus
static_assert(sizeof(struct fwd_config) == 20, "fwd_config layout");
#endif

#endif  // ANYLB_TESTS_BENCH_XDP_BENCH_STRUCTS_H_
