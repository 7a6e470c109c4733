// decap.bpf.c: decapsulation of TUN-mode traffic on a real server.
//
// In TUN mode a director forwards the client's packet to the real server
// inside an outer IP header: IPIP (IP protocol 4, RFC 2003), IP6IP6 (next
// header 41, RFC 2473; also 4in6 and 6in4), or GUE (UDP, default port 6080,
// draft-ietf-intarea-gue: variant 1 = the inner IP packet right after UDP,
// variant 0 = a 4-byte header without extension fields). The real server
// holds the VIP on its loopback and answers the client directly. Our real
// servers' kernels have no ipip/ip6_tunnel/fou modules, so these programs
// strip the outer headers and hand the inner packet to the stack.
//
// Two attach points, same parser (decap_parsing.h):
//   decap_xdp  XDP: fastest; native on drivers with XDP support, or generic.
//              Handles one 802.1Q/802.1ad tag in front of the outer header.
//   decap_tc   tc ingress (clsact): works on every driver. The kernel has
//              already moved any VLAN tag into skb metadata by then.
//
// Only packets whose outer destination is in decap_dsts (and, for GUE, whose
// UDP destination port is in decap_gue_ports) are decapsulated. Everything
// else passes untouched; tunnel packets for us that cannot be decapsulated
// are dropped. Every outcome is counted in decap_counters.
//
// What the decapsulation does NOT do: it does not modify the inner packet
// (its IPv4 header checksum stays valid; the outer TTL is discarded), does
// not copy ECN Congestion Experienced from the outer header (RFC 6040 §4.2
// would), and does not verify the outer UDP checksum (the inner transport
// checksum is still verified by the stack).

// libbpf's headers use the uapi types: linux/* first.
// clang-format off
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
// clang-format on

#include "decap_consts.h"
#include "decap_maps.h"
#include "decap_parsing.h"
#include "decap_structs.h"

// vlan_tag is an 802.1Q tag after the Ethernet addresses' EtherType.
struct vlan_tag {
  __be16 tci;
  __be16 encapsulated_proto;
};

static __always_inline int is_vlan_proto(__be16 proto) {
  return proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD);
}

static __always_inline int decap_parse_l3(void* l3, void* data_end,
                                          __be16 proto, __u32 l3_len,
                                          struct decap_plan* plan) {
  if (proto == bpf_htons(ETH_P_IP))
    return decap_parse_ipv4(l3, data_end, l3_len, plan);
  if (proto == bpf_htons(ETH_P_IPV6))
    return decap_parse_ipv6(l3, data_end, l3_len, plan);
  return decap_pass(plan, ANYLB_DECAP_CNT_PASS_NOT_IP);
}

// decap_xdp: the L2 header (Ethernet and at most one VLAN tag) is saved,
// bpf_xdp_adjust_head() drops the outer headers from the front, and the L2
// header is written back in front of the inner packet with the inner
// EtherType (which differs from the outer one for 4in6 / 6in4 / GUE across
// families).
SEC("xdp")
int decap_xdp(struct xdp_md* ctx) {
  void* data = (void*)(long)ctx->data;
  void* data_end = (void*)(long)ctx->data_end;
  struct decap_plan plan = {};

  struct ethhdr* eth = data;
  if ((void*)(eth + 1) > data_end) {
    decap_count(ANYLB_DECAP_CNT_PASS_NOT_IP);
    return XDP_PASS;
  }
  __be16 proto = eth->h_proto;
  __u32 l2_len = ETH_HLEN;
  if (is_vlan_proto(proto)) {
    struct vlan_tag* tag = data + ETH_HLEN;
    if ((void*)(tag + 1) > data_end) {
      decap_count(ANYLB_DECAP_CNT_PASS_NOT_IP);
      return XDP_PASS;
    }
    proto = tag->encapsulated_proto;
    l2_len = DECAP_MAX_L2_LEN;
    if (is_vlan_proto(proto)) {
      decap_count(ANYLB_DECAP_CNT_PASS_VLAN);
      return XDP_PASS;
    }
  }

  // This program does not declare frags support, so the frame is linear
  // and its length is the buffer length.
  __u32 frame_len = bpf_xdp_get_buff_len(ctx);
  if (frame_len < l2_len) return XDP_PASS;  // Cannot happen; for the verifier.
  int verdict =
      decap_parse_l3(data + l2_len, data_end, proto, frame_len - l2_len, &plan);
  if (verdict == DECAP_VERDICT_PASS) {
    decap_count(plan.counter);
    return XDP_PASS;
  }
  if (verdict == DECAP_VERDICT_DROP) {
    decap_count(plan.counter);
    return XDP_DROP;
  }

  // Save the L2 header. The frame holds at least L2 + outer IP + inner IP
  // bytes, so DECAP_MAX_L2_LEN bytes are always there; checked anyway.
  __u8 l2[DECAP_MAX_L2_LEN];
  if (data + DECAP_MAX_L2_LEN > data_end) return XDP_PASS;
  __builtin_memcpy(l2, data, DECAP_MAX_L2_LEN);
  // The EtherType just in front of the L3 header.
  __builtin_memcpy(&l2[l2_len - 2], &plan.inner_eth_proto, 2);

  if (bpf_xdp_adjust_head(ctx, (int)plan.strip_len)) {
    decap_count(ANYLB_DECAP_CNT_DROP_ADJUST_FAILED);
    return XDP_DROP;
  }
  data = (void*)(long)ctx->data;
  data_end = (void*)(long)ctx->data_end;
  if (data + DECAP_MAX_L2_LEN > data_end) {
    decap_count(ANYLB_DECAP_CNT_DROP_ADJUST_FAILED);
    return XDP_DROP;
  }
  if (l2_len == DECAP_MAX_L2_LEN)
    __builtin_memcpy(data, l2, DECAP_MAX_L2_LEN);
  else
    __builtin_memcpy(data, l2, ETH_HLEN);
  decap_count(plan.counter);
  return XDP_PASS;
}

// decap_tc: bpf_skb_adjust_room(BPF_ADJ_ROOM_MAC) removes the outer headers
// right after the MAC header (the kernel moves the MAC header forward and
// fixes CHECKSUM_COMPLETE; CHECKSUM_UNNECESSARY is reset, so the stack
// verifies the inner checksums itself). When the family changes, the
// DECAP_L3 flag sets skb->protocol and we rewrite the EtherType.
SEC("tc")
int decap_tc(struct __sk_buff* skb) {
  struct decap_plan plan = {};
  __be16 proto = (__be16)skb->protocol;
  if (proto != bpf_htons(ETH_P_IP) && proto != bpf_htons(ETH_P_IPV6)) {
    decap_count(is_vlan_proto(proto) ? ANYLB_DECAP_CNT_PASS_VLAN
                                     : ANYLB_DECAP_CNT_PASS_NOT_IP);
    return TC_ACT_OK;
  }

  // Make the headers we may read linear (a no-op when they already are).
  __u32 want = skb->len < DECAP_MAX_HDR_LEN ? skb->len : DECAP_MAX_HDR_LEN;
  void* data = (void*)(long)skb->data;
  void* data_end = (void*)(long)skb->data_end;
  if (data + want > data_end) {
    if (bpf_skb_pull_data(skb, want)) {
      decap_count(ANYLB_DECAP_CNT_PASS_OUTER_MALFORMED);
      return TC_ACT_OK;
    }
    data = (void*)(long)skb->data;
    data_end = (void*)(long)skb->data_end;
  }

  struct ethhdr* eth = data;
  if ((void*)(eth + 1) > data_end) {
    decap_count(ANYLB_DECAP_CNT_PASS_NOT_IP);
    return TC_ACT_OK;
  }
  if (eth->h_proto != proto) {
    // A tag the kernel did not strip (skb->protocol is the inner one).
    decap_count(ANYLB_DECAP_CNT_PASS_VLAN);
    return TC_ACT_OK;
  }
  if (skb->len < ETH_HLEN)
    return TC_ACT_OK;  // Cannot happen; for the verifier.

  int verdict = decap_parse_l3(data + ETH_HLEN, data_end, proto,
                               skb->len - ETH_HLEN, &plan);
  if (verdict == DECAP_VERDICT_PASS) {
    decap_count(plan.counter);
    return TC_ACT_OK;
  }
  if (verdict == DECAP_VERDICT_DROP) {
    decap_count(plan.counter);
    return TC_ACT_SHOT;
  }

  // The inner GSO segments keep their size: only outer bytes go.
  __u64 flags = BPF_F_ADJ_ROOM_FIXED_GSO;
  int family_changes = plan.inner_eth_proto != proto;
  if (family_changes) {
    flags |= plan.inner_eth_proto == bpf_htons(ETH_P_IP)
                 ? DECAP_ADJ_ROOM_DECAP_L3_IPV4
                 : DECAP_ADJ_ROOM_DECAP_L3_IPV6;
  }
  if (bpf_skb_adjust_room(skb, -(__s32)plan.strip_len, BPF_ADJ_ROOM_MAC,
                          flags)) {
    decap_count(ANYLB_DECAP_CNT_DROP_ADJUST_FAILED);
    return TC_ACT_SHOT;
  }
  if (family_changes &&
      bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_proto),
                          &plan.inner_eth_proto, sizeof(plan.inner_eth_proto),
                          0)) {
    decap_count(ANYLB_DECAP_CNT_DROP_ADJUST_FAILED);
    return TC_ACT_SHOT;
  }
  decap_count(plan.counter);
  return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
