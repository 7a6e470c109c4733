// decap_parsing.h: classifies one frame for the real-server decapsulation
// program — decapsulate, pass untouched, or drop — without changing it.
//
// The same code serves the XDP and the tc program: each finds its L3 header
// and the number of L3 bytes the frame holds, calls decap_parse_ipv4() or
// decap_parse_ipv6(), and applies the resulting plan with its own helpers.
// Every header access is preceded by a check against `data_end`; lengths from
// the packet are checked against `l3_len` (the frame's bytes from the L3
// header on), so a lying length field can neither send a read past the
// buffer nor make us strip more than the packet holds.

#ifndef ANYLB_LBNODE_DATAPLANE_BPF_DECAP_PARSING_H_
#define ANYLB_LBNODE_DATAPLANE_BPF_DECAP_PARSING_H_

// libbpf's headers use the uapi types: linux/* first.
// clang-format off
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
// clang-format on

#include "csum_helpers.h"
#include "decap_consts.h"
#include "decap_maps.h"
#include "decap_structs.h"

// decap_verdict is what to do with a frame.
enum decap_verdict {
  DECAP_VERDICT_PASS,   // Not ours: hand it to the stack untouched.
  DECAP_VERDICT_DROP,   // A tunnel packet for us that cannot be decapsulated.
  DECAP_VERDICT_DECAP,  // Strip plan.strip_len bytes after the L2 header.
};

// decap_plan is the outcome of parsing. `counter` is always set: the reason
// for PASS and DROP, the encapsulation for DECAP (counted by the caller once
// the strip succeeded).
struct decap_plan {
  __u32 counter;           // enum anylb_decap_counter.
  __u32 strip_len;         // Outer IP (+ UDP + GUE) bytes to remove.
  __be16 inner_eth_proto;  // ETH_P_IP or ETH_P_IPV6, network order.
};

static __always_inline int decap_pass(struct decap_plan* plan, __u32 counter) {
  plan->counter = counter;
  return DECAP_VERDICT_PASS;
}

static __always_inline int decap_drop(struct decap_plan* plan, __u32 counter) {
  plan->counter = counter;
  return DECAP_VERDICT_DROP;
}

// decap_is_tunnel_proto returns whether an IP protocol can carry a tunnel we
// decapsulate.
static __always_inline int decap_is_tunnel_proto(__u8 proto) {
  return proto == DECAP_IPPROTO_IPIP || proto == DECAP_IPPROTO_IPV6 ||
         proto == DECAP_IPPROTO_UDP;
}

// decap_is_gue_port returns whether UDP destination port `port_be` (network
// order) carries GUE.
static __always_inline int decap_is_gue_port(__be16 port_be) {
  __u16 port = bpf_ntohs(port_be);
  return bpf_map_lookup_elem(&decap_gue_ports, &port) != NULL;
}

// decap_is_local_v4 / decap_is_local_v6 return whether an outer destination
// is one of ours (in decap_dsts).
static __always_inline int decap_is_local_v4(__be32 daddr) {
  struct anylb_decap_dst_key key;
  __builtin_memset(&key, 0, sizeof(key));
  key.family = ANYLB_DECAP_FAMILY_V4;
  __builtin_memcpy(key.addr, &daddr, sizeof(daddr));
  return bpf_map_lookup_elem(&decap_dsts, &key) != NULL;
}

static __always_inline int decap_is_local_v6(const struct in6_addr* daddr) {
  struct anylb_decap_dst_key key;
  __builtin_memset(&key, 0, sizeof(key));
  key.family = ANYLB_DECAP_FAMILY_V6;
  __builtin_memcpy(key.addr, daddr, sizeof(key.addr));
  return bpf_map_lookup_elem(&decap_dsts, &key) != NULL;
}

// decap_check_inner validates the inner IP header at `inner`: `inner_len`
// bytes belong to the inner packet according to the outer length fields, and
// its version must be `version` (4 or 6), which the encapsulation implies.
// On success sets plan->inner_eth_proto and returns DECAP_VERDICT_DECAP.
// The inner header is only read, never modified: its checksum stays valid.
static __always_inline int decap_check_inner(const void* inner,
                                             const void* data_end,
                                             __u32 inner_len, int version,
                                             struct decap_plan* plan) {
  if (version == 4) {
    // RFC 791 §3.1.
    const struct iphdr* ip = inner;
    if ((const void*)(ip + 1) > data_end || inner_len < sizeof(*ip))
      return decap_drop(plan, ANYLB_DECAP_CNT_DROP_INNER_TRUNCATED);
    if (ip->version != 4)
      return decap_drop(plan, ANYLB_DECAP_CNT_DROP_INNER_VERSION);
    __u32 hlen = (__u32)ip->ihl * 4;
    __u32 total = bpf_ntohs(ip->tot_len);
    if (hlen < DECAP_IPV4_MIN_HLEN || total < hlen)
      return decap_drop(plan, ANYLB_DECAP_CNT_DROP_INNER_BAD_HEADER);
    if (total > inner_len)
      return decap_drop(plan, ANYLB_DECAP_CNT_DROP_INNER_TRUNCATED);
    plan->inner_eth_proto = bpf_htons(ETH_P_IP);
    return DECAP_VERDICT_DECAP;
  }
  // RFC 8200 §3. (A payload length of 0 is left for the stack to judge.)
  const struct ipv6hdr* ip6 = inner;
  if ((const void*)(ip6 + 1) > data_end || inner_len < sizeof(*ip6))
    return decap_drop(plan, ANYLB_DECAP_CNT_DROP_INNER_TRUNCATED);
  if (ip6->version != 6)
    return decap_drop(plan, ANYLB_DECAP_CNT_DROP_INNER_VERSION);
  if (sizeof(*ip6) + bpf_ntohs(ip6->payload_len) > inner_len)
    return decap_drop(plan, ANYLB_DECAP_CNT_DROP_INNER_TRUNCATED);
  plan->inner_eth_proto = bpf_htons(ETH_P_IPV6);
  return DECAP_VERDICT_DECAP;
}

// decap_parse_payload parses what follows a validated outer IP header of
// `outer_hlen` bytes whose protocol is `proto` and whose payload (per the
// outer length fields) is `payload_len` bytes at `payload`.
static __always_inline int decap_parse_payload(__u8 proto, const void* payload,
                                               const void* data_end,
                                               __u32 payload_len,
                                               __u32 outer_hlen,
                                               struct decap_plan* plan) {
  if (proto == DECAP_IPPROTO_IPIP) {
    plan->counter = ANYLB_DECAP_CNT_DECAP_IPIP;
    plan->strip_len = outer_hlen;
    return decap_check_inner(payload, data_end, payload_len, 4, plan);
  }
  if (proto == DECAP_IPPROTO_IPV6) {
    plan->counter = ANYLB_DECAP_CNT_DECAP_IP6IP6;
    plan->strip_len = outer_hlen;
    return decap_check_inner(payload, data_end, payload_len, 6, plan);
  }

  // UDP to a GUE port (the caller checked the port).
  const struct udphdr* udp = payload;
  if ((const void*)(udp + 1) > data_end)
    return decap_drop(plan, ANYLB_DECAP_CNT_DROP_GUE_MALFORMED);
  __u32 udp_len = bpf_ntohs(udp->len);
  // RFC 768: the length covers header and data. One more byte at least: the
  // GUE variant bits.
  if (udp_len <= DECAP_UDP_HLEN || udp_len > payload_len)
    return decap_drop(plan, ANYLB_DECAP_CNT_DROP_GUE_MALFORMED);
  const __u8* gue = (const __u8*)(udp + 1);
  if ((const void*)(gue + 1) > data_end)
    return decap_drop(plan, ANYLB_DECAP_CNT_DROP_GUE_MALFORMED);
  __u8 first = gue[0];
  __u8 variant = first >> DECAP_GUE_VARIANT_SHIFT;

  if (variant == 1) {
    // draft-ietf-intarea-gue §4.1: the IP header itself; 0100 is IPv4,
    // 0110 IPv6; 0101 and 0111 are not IP.
    __u8 version = first >> 4;
    if (version != 4 && version != 6)
      return decap_drop(plan, ANYLB_DECAP_CNT_DROP_INNER_VERSION);
    plan->counter = ANYLB_DECAP_CNT_DECAP_GUE_V1;
    plan->strip_len = outer_hlen + DECAP_UDP_HLEN;
    return decap_check_inner(gue, data_end, udp_len - DECAP_UDP_HLEN, version,
                             plan);
  }
  if (variant != 0)
    return decap_drop(plan, ANYLB_DECAP_CNT_DROP_GUE_UNSUPPORTED);

  // Variant 0 (§3.1): |0 0|C|Hlen(5)|Proto/ctype(8)|Flags(16)|. We accept
  // data messages (C=0) without extension fields (Hlen=0, so no flags).
  if ((const void*)(gue + DECAP_GUE_V0_HLEN) > data_end ||
      udp_len < DECAP_UDP_HLEN + DECAP_GUE_V0_HLEN)
    return decap_drop(plan, ANYLB_DECAP_CNT_DROP_GUE_MALFORMED);
  if ((first & (DECAP_GUE_C_BIT | DECAP_GUE_HLEN_MASK)) != 0 || gue[2] != 0 ||
      gue[3] != 0)
    return decap_drop(plan, ANYLB_DECAP_CNT_DROP_GUE_UNSUPPORTED);
  int version;
  if (gue[1] == DECAP_IPPROTO_IPIP) {
    version = 4;
  } else if (gue[1] == DECAP_IPPROTO_IPV6) {
    version = 6;
  } else {
    return decap_drop(plan, ANYLB_DECAP_CNT_DROP_GUE_UNSUPPORTED);
  }
  plan->counter = ANYLB_DECAP_CNT_DECAP_GUE_V0;
  plan->strip_len = outer_hlen + DECAP_UDP_HLEN + DECAP_GUE_V0_HLEN;
  return decap_check_inner(gue + DECAP_GUE_V0_HLEN, data_end,
                           udp_len - DECAP_UDP_HLEN - DECAP_GUE_V0_HLEN,
                           version, plan);
}

// decap_parse_ipv4 classifies a frame whose L3 header, an IPv4 one by its
// EtherType, starts at `l3`; the frame holds `l3_len` bytes from there on.
//
// Outer IPv4 options are allowed (IHL 5..15): they are stripped with the
// header. Fragments (MF set or a nonzero offset, RFC 791 §3.2) are passed:
// only the kernel can reassemble them.
static __always_inline int decap_parse_ipv4(void* l3, void* data_end,
                                            __u32 l3_len,
                                            struct decap_plan* plan) {
  struct iphdr* iph = l3;
  if ((void*)(iph + 1) > data_end || iph->version != 4)
    return decap_pass(plan, ANYLB_DECAP_CNT_PASS_OUTER_MALFORMED);
  __u32 hlen = (__u32)iph->ihl * 4;
  __u32 total = bpf_ntohs(iph->tot_len);
  if (hlen < DECAP_IPV4_MIN_HLEN || total < hlen || total > l3_len)
    return decap_pass(plan, ANYLB_DECAP_CNT_PASS_OUTER_MALFORMED);

  __u8 proto = iph->protocol;
  if (!decap_is_tunnel_proto(proto))
    return decap_pass(plan, ANYLB_DECAP_CNT_PASS_NOT_TUNNEL);
  int fragment = (bpf_ntohs(iph->frag_off) &
                  (DECAP_IPV4_MF | DECAP_IPV4_OFFSET_MASK)) != 0;
  // Only an unfragmented datagram is known to hold its whole UDP header.
  if (proto == DECAP_IPPROTO_UDP && !fragment) {
    struct udphdr* udp = l3 + hlen;
    if ((void*)(udp + 1) > data_end || total < hlen + DECAP_UDP_HLEN)
      return decap_pass(plan, ANYLB_DECAP_CNT_PASS_NOT_TUNNEL);
    if (!decap_is_gue_port(udp->dest))
      return decap_pass(plan, ANYLB_DECAP_CNT_PASS_NOT_TUNNEL);
  }
  if (!decap_is_local_v4(iph->daddr))
    return decap_pass(plan, ANYLB_DECAP_CNT_PASS_NOT_LOCAL);
  if (fragment) return decap_pass(plan, ANYLB_DECAP_CNT_PASS_FRAGMENT);
  // The kernel would verify this before decapsulating; so do we.
  if (!ipv4_header_checksum_ok(iph, hlen, data_end))
    return decap_drop(plan, ANYLB_DECAP_CNT_DROP_OUTER_CHECKSUM);

  return decap_parse_payload(proto, l3 + hlen, data_end, total - hlen, hlen,
                             plan);
}

// decap_parse_ipv6 is decap_parse_ipv4 for an outer IPv6 header (RFC 8200).
//
// Only a tunnel protocol directly in the fixed header's Next Header is
// decapsulated; a Fragment header (§4.5) in front of one makes the packet a
// fragment, passed to the kernel. Other extension headers are not walked: a
// director does not add them, so such packets are not tunnel traffic for us.
static __always_inline int decap_parse_ipv6(void* l3, void* data_end,
                                            __u32 l3_len,
                                            struct decap_plan* plan) {
  struct ipv6hdr* ip6 = l3;
  if ((void*)(ip6 + 1) > data_end || ip6->version != 6)
    return decap_pass(plan, ANYLB_DECAP_CNT_PASS_OUTER_MALFORMED);
  __u32 payload_len = bpf_ntohs(ip6->payload_len);
  if (payload_len == 0 || DECAP_IPV6_HLEN + payload_len > l3_len)
    return decap_pass(plan, ANYLB_DECAP_CNT_PASS_OUTER_MALFORMED);

  __u8 proto = ip6->nexthdr;
  int fragment = 0;
  if (proto == DECAP_IPPROTO_FRAGMENT) {
    // The Fragment header's first byte is the fragmented packet's protocol.
    __u8* next = l3 + DECAP_IPV6_HLEN;
    if ((void*)(next + 1) > data_end)
      return decap_pass(plan, ANYLB_DECAP_CNT_PASS_OUTER_MALFORMED);
    proto = *next;
    fragment = 1;
  }
  if (!decap_is_tunnel_proto(proto))
    return decap_pass(plan, ANYLB_DECAP_CNT_PASS_NOT_TUNNEL);
  if (proto == DECAP_IPPROTO_UDP && !fragment) {
    struct udphdr* udp = l3 + DECAP_IPV6_HLEN;
    if ((void*)(udp + 1) > data_end || payload_len < DECAP_UDP_HLEN)
      return decap_pass(plan, ANYLB_DECAP_CNT_PASS_NOT_TUNNEL);
    if (!decap_is_gue_port(udp->dest))
      return decap_pass(plan, ANYLB_DECAP_CNT_PASS_NOT_TUNNEL);
  }
  if (!decap_is_local_v6(&ip6->daddr))
    return decap_pass(plan, ANYLB_DECAP_CNT_PASS_NOT_LOCAL);
  if (fragment) return decap_pass(plan, ANYLB_DECAP_CNT_PASS_FRAGMENT);

  return decap_parse_payload(proto, l3 + DECAP_IPV6_HLEN, data_end, payload_len,
                             DECAP_IPV6_HLEN, plan);
}

#endif  // ANYLB_LBNODE_DATAPLANE_BPF_DECAP_PARSING_H_
