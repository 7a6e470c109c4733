// xdp_pass.bpf.c: an XDP program that passes every frame.
//
// A veth delivers frames that its peer sends with XDP_TX or XDP_REDIRECT
// (ndo_xdp_xmit) only while its own NAPI instance runs, and the kernel turns
// that on when the veth has an XDP program (GRO enabled on a bridge port was
// not enough on this kernel: deploy/lab lost frames that way). The lab
// attaches this program to the bridge-side peer of the director's veth so
// the director's XDP_TX / redirected frames reach the bridge (see
// tests/netns/README.md).

#include <linux/bpf.h>

#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_pass(struct xdp_md* ctx) {
  (void)ctx;
  return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
