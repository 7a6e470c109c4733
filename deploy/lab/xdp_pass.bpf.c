// xdp_pass.bpf.c: an XDP program that passes every frame, for the lab's
// bridge ports facing the directors.
//
// lbnode's XDP fast path sends established flows with XDP_TX out of the
// director's veth. A veth delivers frames its peer sends that way only while
// its own NAPI instance runs, which the kernel turns on when the veth has an
// XDP program. Enabling GRO on the bridge port instead was tried here (kernel
// 6.18): the frames were still lost, so lab.sh attaches this program (the
// same program as tests/netns/xdp_pass.bpf.c; this copy keeps the lab
// independent of the tests' packages).

#include <linux/bpf.h>

#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_pass(struct xdp_md* ctx) {
  (void)ctx;
  return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
