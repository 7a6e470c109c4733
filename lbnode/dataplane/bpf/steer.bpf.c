// steer.bpf.c: the director's XDP steering program.
//
// A director's NIC carries two kinds of traffic: the packets the load
// balancer forwards (to VIPs; for NAT the real servers' replies; for FULLNAT
// the replies to the director's local addresses), which the packet engine
// reads from one AF_XDP socket per RX queue, and the node's own traffic (ARP
// and IPv6 Neighbor Discovery, BGP sessions with the routers, SSH, health
// checks and their replies), which must reach the kernel or the node falls
// off the network. steer_xdp tells them apart:
//
//   destination (addr, port, proto) in steer_vips, or (addr, 0, proto)  VIP
//   ICMP / ICMPv6 to an address in steer_vip_addrs                       VIP
//   destination address in steer_locals (any protocol)                   LOCAL
//   TCP/UDP source (addr, port, proto) in steer_nat_backends, or port 0  NAT
//   anything else                                                        pass
//
// and redirects the first three to the AF_XDP socket of the frame's RX queue
// (bpf_redirect_map on xsks_map, falling back to XDP_PASS when the queue has
// no socket). Rules:
// - ICMP and ICMPv6 to a VIP address are steered whatever their type: the
//   errors (RFC 792 / RFC 4443 destination unreachable, packet too big, time
//   exceeded) are about flows the engine forwards and must reach it to be
//   matched through the embedded header; echo requests to a VIP are steered
//   too (the engine decides whether to answer them; the kernel does not own
//   the VIP).
// - IPv6 Neighbor Discovery (RFC 4861, ICMPv6 types 133-137) always goes to
//   the kernel, even to a VIP or local address.
// - Fragments (IPv4 MF or offset != 0, RFC 791 §3.2; an IPv6 Fragment header
//   as the first next header, RFC 8200 §4.5) are decided on the destination
//   address alone, the first fragment included, so all fragments of a
//   datagram go the same way (the engine hashes them by the 3-tuple): a VIP
//   address or a local address is steered, anything else passed. NAT replies
//   that arrive fragmented therefore reach the kernel (documented in
//   README.md).
// - IPv4 options are skipped (IHL). IPv6: only the first next header is
//   looked at (plus a Fragment header); a VIP packet behind other extension
//   headers is not recognised as TCP/UDP and only a port-0 VIP entry for
//   that next-header value would match.
// - One 802.1Q / 802.1ad tag is skipped; two tags are not IP to us.
// - Malformed frames (truncated or inconsistent IP, TCP, UDP or ICMP
//   headers) are passed, for the kernel to drop and count, and counted here.
//
// The fast path (steer_structs.h, README.md "Fast path"): every TCP/UDP
// frame (not a fragment) is first looked up in fastpath_flows by its
// 5-tuple, before the decision above (entries exist only for flows to VIPs
// of the current config: a hit needs no VIP lookup). A hit whose entry is
// current (its generation is its queue's) is rewritten here exactly as the
// engine would (DR: the MACs; TUN: the outer headers prepended, with
// lengths, TOS / traffic class, checksums) and sent with XDP_TX, or
// bpf_redirect_map into fastpath_tx_ports when the entry names another
// egress interface. These take the decision above as before (to the
// AF_XDP socket, for the engine): TCP SYN, FIN or RST (the engine's state machine must see
// them), fragments, ICMP, a frame whose VLAN framing differs from the
// entry's, a TUN packet that would exceed the MTU once encapsulated, and
// for GUE over IPv6 (whose UDP checksum is derived from the inner
// transport checksum, RFC 1071 §2) an inner IPv4 header with options, an
// inner IPv4 UDP datagram without checksum or an IPv6 Fragment header.
//
// Every frame goes up exactly one decision counter; see steer_structs.h.

// libbpf's headers use the uapi types: linux/* first.
// clang-format off
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
// clang-format on

#include "csum_helpers.h"
#include "decap_consts.h"
#include "steer_maps.h"
#include "steer_structs.h"

#define STEER_IPPROTO_ICMPV6 58
#define STEER_ICMP_HLEN 8  // Type, code, checksum, rest (RFC 792/4443).
#define STEER_IPV6_FRAG_HLEN 8
#define STEER_IPV6_FRAG_OFFSET_MASK 0xfff8  // Host order (RFC 8200 §4.5).
#define STEER_IPV6_FRAG_M 0x0001
// ICMPv6 Router Solicitation .. Redirect (RFC 4861 §4).
#define STEER_ICMPV6_ND_FIRST 133
#define STEER_ICMPV6_ND_LAST 137

// steer_vlan_tag is an 802.1Q tag after the Ethernet addresses' EtherType.
struct steer_vlan_tag {
  __be16 tci;
  __be16 encapsulated_proto;
};

// steer_tuple is what the decision needs from a frame.
struct steer_tuple {
  __u8 family;  // ANYLB_STEER_FAMILY_V4 / _V6.
  __u8 proto;   // The transport protocol (after an IPv6 Fragment header).
  __u8 fragment;
  __u8 nd;      // IPv6 Neighbor Discovery.
  __u16 sport;  // Host order; 0 unless TCP/UDP (and not a fragment).
  __u16 dport;
  // For the fast path.
  __u8 tcp_flags;     // TCP flags byte (FIN 0x01, SYN 0x02, RST 0x04).
  __u8 udp_no_csum;   // UDP over IPv4 with checksum 0 (RFC 768).
  __u8 ip_options;    // IPv4 IHL > 5, or an IPv6 (atomic) Fragment header.
  __u8 tos;           // IPv4 TOS / IPv6 traffic class.
  __u32 ip_len;  // The IP datagram: IPv4 total length, IPv6 40 + payload.
  __u32 l4_len;  // Transport header + data, by the IP length fields.
  __u8 saddr[16];
  __u8 daddr[16];
};

static __always_inline int steer_is_vlan_proto(__be16 proto) {
  return proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD);
}

// steer_parse_l4 reads the transport header at `l4`, `l4_len` bytes long by
// the IP length fields (already checked against the frame). Returns 0, or -1
// for a malformed header.
static __always_inline int steer_parse_l4(void* l4, void* data_end,
                                          __u32 l4_len, struct steer_tuple* t) {
  if (t->proto == IPPROTO_TCP) {
    struct tcphdr* tcp = l4;
    // RFC 793 §3.1: data offset in 32-bit words, at least 5.
    if ((void*)(tcp + 1) > data_end || l4_len < sizeof(*tcp)) return -1;
    __u32 doff = (__u32)tcp->doff * 4;
    if (doff < sizeof(*tcp) || doff > l4_len) return -1;
    t->sport = bpf_ntohs(tcp->source);
    t->dport = bpf_ntohs(tcp->dest);
    t->tcp_flags = ((__u8*)tcp)[13];
    t->l4_len = l4_len;
    return 0;
  }
  if (t->proto == IPPROTO_UDP) {
    struct udphdr* udp = l4;
    // RFC 768: the length covers header and data.
    if ((void*)(udp + 1) > data_end || l4_len < sizeof(*udp)) return -1;
    __u32 len = bpf_ntohs(udp->len);
    if (len < sizeof(*udp) || len > l4_len) return -1;
    t->sport = bpf_ntohs(udp->source);
    t->dport = bpf_ntohs(udp->dest);
    t->udp_no_csum = udp->check == 0;
    t->l4_len = l4_len;
    return 0;
  }
  if (t->proto == IPPROTO_ICMP || t->proto == STEER_IPPROTO_ICMPV6) {
    __u8* icmp = l4;
    if ((void*)(icmp + STEER_ICMP_HLEN) > data_end || l4_len < STEER_ICMP_HLEN)
      return -1;
    if (t->proto == STEER_IPPROTO_ICMPV6 && icmp[0] >= STEER_ICMPV6_ND_FIRST &&
        icmp[0] <= STEER_ICMPV6_ND_LAST)
      t->nd = 1;
    return 0;
  }
  return 0;  // Other protocols: decided without ports.
}

// steer_parse_ipv4 fills `t` from the IPv4 header at `l3`; the frame holds
// `l3_len` bytes from there on. Returns 0, or -1 for a malformed packet.
static __always_inline int steer_parse_ipv4(void* l3, void* data_end,
                                            __u32 l3_len,
                                            struct steer_tuple* t) {
  struct iphdr* iph = l3;
  if ((void*)(iph + 1) > data_end || iph->version != 4) return -1;
  __u32 hlen = (__u32)iph->ihl * 4;
  __u32 total = bpf_ntohs(iph->tot_len);
  if (hlen < DECAP_IPV4_MIN_HLEN || total < hlen || total > l3_len) return -1;
  t->family = ANYLB_STEER_FAMILY_V4;
  t->proto = iph->protocol;
  t->tos = iph->tos;
  t->ip_len = total;
  t->ip_options = hlen != DECAP_IPV4_MIN_HLEN;
  __builtin_memcpy(t->saddr, &iph->saddr, 4);
  __builtin_memcpy(t->daddr, &iph->daddr, 4);
  if (bpf_ntohs(iph->frag_off) & (DECAP_IPV4_MF | DECAP_IPV4_OFFSET_MASK)) {
    t->fragment = 1;
    return 0;
  }
  return steer_parse_l4(l3 + hlen, data_end, total - hlen, t);
}

// steer_parse_ipv6 is steer_parse_ipv4 for IPv6 (RFC 8200). A Fragment
// header as the first next header makes the packet a fragment unless it is
// an atomic fragment (offset 0, M clear), whose transport header follows.
static __always_inline int steer_parse_ipv6(void* l3, void* data_end,
                                            __u32 l3_len,
                                            struct steer_tuple* t) {
  struct ipv6hdr* ip6 = l3;
  if ((void*)(ip6 + 1) > data_end || ip6->version != 6) return -1;
  __u32 payload_len = bpf_ntohs(ip6->payload_len);
  if (l3_len < DECAP_IPV6_HLEN || payload_len > l3_len - DECAP_IPV6_HLEN)
    return -1;
  t->family = ANYLB_STEER_FAMILY_V6;
  t->proto = ip6->nexthdr;
  t->tos = (__u8)((bpf_ntohs(*(__be16*)ip6) >> 4) & 0xff);
  t->ip_len = DECAP_IPV6_HLEN + payload_len;
  __builtin_memcpy(t->saddr, &ip6->saddr, 16);
  __builtin_memcpy(t->daddr, &ip6->daddr, 16);
  void* l4 = l3 + DECAP_IPV6_HLEN;
  if (t->proto == DECAP_IPPROTO_FRAGMENT) {
    __u8* frag = l4;
    if ((void*)(frag + STEER_IPV6_FRAG_HLEN) > data_end ||
        payload_len < STEER_IPV6_FRAG_HLEN)
      return -1;
    t->proto = frag[0];
    t->ip_options = 1;
    __u16 offset_m = ((__u16)frag[2] << 8) | frag[3];
    if (offset_m & (STEER_IPV6_FRAG_OFFSET_MASK | STEER_IPV6_FRAG_M)) {
      t->fragment = 1;
      return 0;
    }
    return steer_parse_l4(l4 + STEER_IPV6_FRAG_HLEN, data_end,
                          payload_len - STEER_IPV6_FRAG_HLEN, t);
  }
  return steer_parse_l4(l4, data_end, payload_len, t);
}

// steer_addr_in looks the destination or source address up in an address
// map (steer_locals or steer_vip_addrs).
static __always_inline int steer_addr_in(void* map, __u8 family,
                                         const __u8* addr) {
  struct anylb_steer_addr_key key;
  __builtin_memset(&key, 0, sizeof(key));
  key.family = family;
  if (family == ANYLB_STEER_FAMILY_V4)
    __builtin_memcpy(key.addr, addr, 4);
  else
    __builtin_memcpy(key.addr, addr, 16);
  return bpf_map_lookup_elem(map, &key) != NULL;
}

// steer_l4_in looks (addr, port, proto) up in steer_vips or
// steer_nat_backends, then (addr, 0, proto), the port wildcard.
static __always_inline int steer_l4_in(void* map, const struct steer_tuple* t,
                                       const __u8* addr, __u16 port) {
  struct anylb_steer_l4_key key;
  __builtin_memset(&key, 0, sizeof(key));
  key.family = t->family;
  key.proto = t->proto;
  key.port = port;
  if (t->family == ANYLB_STEER_FAMILY_V4)
    __builtin_memcpy(key.addr, addr, 4);
  else
    __builtin_memcpy(key.addr, addr, 16);
  if (bpf_map_lookup_elem(map, &key)) return 1;
  if (port == 0) return 0;
  key.port = 0;
  return bpf_map_lookup_elem(map, &key) != NULL;
}

// steer_classify returns the decision counter for a parsed frame.
static __always_inline __u32 steer_classify(const struct steer_tuple* t) {
  if (t->nd) return ANYLB_STEER_CNT_PASS_ND;
  if (t->fragment) {
    if (steer_addr_in(&steer_vip_addrs, t->family, t->daddr))
      return ANYLB_STEER_CNT_STEER_VIP;
    if (steer_addr_in(&steer_locals, t->family, t->daddr))
      return ANYLB_STEER_CNT_STEER_LOCAL;
    return ANYLB_STEER_CNT_PASS_NO_MATCH;
  }
  if (t->proto == IPPROTO_ICMP || t->proto == STEER_IPPROTO_ICMPV6) {
    if (steer_addr_in(&steer_vip_addrs, t->family, t->daddr))
      return ANYLB_STEER_CNT_STEER_VIP;
  } else if (steer_l4_in(&steer_vips, t, t->daddr, t->dport)) {
    return ANYLB_STEER_CNT_STEER_VIP;
  }
  if (steer_addr_in(&steer_locals, t->family, t->daddr))
    return ANYLB_STEER_CNT_STEER_LOCAL;
  if ((t->proto == IPPROTO_TCP || t->proto == IPPROTO_UDP) &&
      steer_l4_in(&steer_nat_backends, t, t->saddr, t->sport))
    return ANYLB_STEER_CNT_STEER_NAT_REPLY;
  return ANYLB_STEER_CNT_PASS_NO_MATCH;
}

#define FASTPATH_TCP_FIN 0x01
#define FASTPATH_TCP_SYN 0x02
#define FASTPATH_TCP_RST 0x04

// fastpath_sum_words adds `n` 16-bit words at `p` (in memory order: a
// one's-complement sum does not care, RFC 1071 §2(B)). `n` is a constant.
static __always_inline __u32 fastpath_sum_words(const void* p, int n) {
  const __u16* w = p;
  __u32 sum = 0;
#pragma unroll
  for (int i = 0; i < n; i++) sum += w[i];
  return sum;
}

// fastpath_inner_sum is the one's-complement sum of the whole IP datagram
// `t` describes, taken from the stack copy of its header words
// (`hdr_words`, 10 or 20) and, for the transport part, from its own
// checksum: a segment whose checksum is right sums to the complement of
// its pseudo-header (RFC 793 §3.1, RFC 768, RFC 8200 §8.1), so nothing
// past the IP header is read.
static __always_inline __u32 fastpath_inner_sum(const struct steer_tuple* t,
                                                __u32 ip_hdr_sum) {
  __u32 pseudo = bpf_htons((__u16)t->proto) + bpf_htons((__u16)t->l4_len);
  if (t->family == ANYLB_STEER_FAMILY_V4) {
    pseudo += fastpath_sum_words(t->saddr, 2) + fastpath_sum_words(t->daddr, 2);
  } else {
    pseudo +=
        fastpath_sum_words(t->saddr, 8) + fastpath_sum_words(t->daddr, 8);
  }
  return ip_hdr_sum + csum_fold(pseudo);  // csum_fold complements.
}

// fastpath_count_traffic adds the frame to its entry and its slot.
static __always_inline void fastpath_count_traffic(
    struct anylb_fastpath_value* v, __u32 frame_len) {
  // Plain adds: a flow's frames arrive on one RX queue, so one CPU, at a
  // time (RSS); a rare race loses a count here, never in the slots below,
  // which the metrics use.
  v->last_seen_ns = bpf_ktime_get_ns();
  v->packets += 1;
  v->bytes += frame_len;
  __u32 slot = v->slot;
  struct anylb_fastpath_traffic* traffic =
      bpf_map_lookup_elem(&fastpath_traffic, &slot);
  if (traffic) {
    traffic->packets += 1;
    traffic->bytes += frame_len;
  }
}

// fastpath_punt counts a hit that goes to AF_XDP after all.
static __always_inline int fastpath_punt(void) {
  steer_count(ANYLB_STEER_CNT_FASTPATH_PUNT);
  return -1;
}

// fastpath_try looks a VIP frame up in fastpath_flows. It returns the XDP
// action after rewriting the frame, or -1: the frame is unchanged (a miss
// or a punt; see the file comment) and goes to AF_XDP.
static __always_inline int fastpath_try(struct xdp_md* ctx,
                                        const struct steer_tuple* t,
                                        __u32 l2_len, __u32 frame_len) {
  if (t->fragment || (t->proto != IPPROTO_TCP && t->proto != IPPROTO_UDP))
    return -1;
  struct anylb_fastpath_key key;
  __builtin_memset(&key, 0, sizeof(key));
  if (t->family == ANYLB_STEER_FAMILY_V4) {
    __builtin_memcpy(key.saddr, t->saddr, 4);
    __builtin_memcpy(key.daddr, t->daddr, 4);
    key.family = 0;
  } else {
    __builtin_memcpy(key.saddr, t->saddr, 16);
    __builtin_memcpy(key.daddr, t->daddr, 16);
    key.family = 1;
  }
  key.sport = t->sport;
  key.dport = t->dport;
  key.proto = t->proto;
  struct anylb_fastpath_value* v = bpf_map_lookup_elem(&fastpath_flows, &key);
  if (!v) return -1;
  if (t->tcp_flags & (FASTPATH_TCP_SYN | FASTPATH_TCP_FIN | FASTPATH_TCP_RST))
    return fastpath_punt();
  __u32 queue = v->owner_queue;
  __u32* generation = bpf_map_lookup_elem(&fastpath_generations, &queue);
  if (!generation || *generation != v->generation || v->l2_len != l2_len)
    return fastpath_punt();

  if (v->mode == ANYLB_FASTPATH_MODE_DR) {
    void* data = (void*)(long)ctx->data;
    void* data_end = (void*)(long)ctx->data_end;
    if (data + 12 > data_end) return fastpath_punt();
    __builtin_memcpy(data, v->hdr, 12);
  } else if (v->mode == ANYLB_FASTPATH_MODE_TUN) {
    const int outer_v6 = (v->flags & ANYLB_FASTPATH_OUTER_V6) != 0;
    const int gue = (v->flags & ANYLB_FASTPATH_GUE) != 0;
    const __u32 ip_size = outer_v6 ? DECAP_IPV6_HLEN : DECAP_IPV4_MIN_HLEN;
    const __u32 overhead = ip_size + (gue ? DECAP_UDP_HLEN : 0);
    if (v->hdr_len != l2_len + overhead || v->hdr_len > ANYLB_FASTPATH_MAX_HDR)
      return fastpath_punt();
    const __u32 ip_len = t->ip_len;
    if (ip_len > v->max_inner_len || l2_len + ip_len > frame_len)
      return fastpath_punt();
    // GUE over IPv6: the UDP checksum covers the inner datagram; sum its IP
    // header now, from the frame as received.
    __u32 inner_sum = 0;
    if (gue && outer_v6) {
      if (t->ip_options || t->udp_no_csum) return fastpath_punt();
      void* data = (void*)(long)ctx->data;
      void* data_end = (void*)(long)ctx->data_end;
      void* inner = data + (l2_len == ETH_HLEN ? ETH_HLEN : DECAP_MAX_L2_LEN);
      if (t->family == ANYLB_STEER_FAMILY_V4) {
        if (inner + DECAP_IPV4_MIN_HLEN > data_end) return fastpath_punt();
        inner_sum = fastpath_inner_sum(t, fastpath_sum_words(inner, 10));
      } else {
        if (inner + DECAP_IPV6_HLEN > data_end) return fastpath_punt();
        inner_sum = fastpath_inner_sum(t, fastpath_sum_words(inner, 20));
      }
    }
    // The engine sends the datagram without Ethernet padding.
    const __u32 padding = frame_len - l2_len - ip_len;
    if (padding > 0 && bpf_xdp_adjust_tail(ctx, -(int)padding)) {
      steer_count(ANYLB_STEER_CNT_FASTPATH_ADJUST_FAILED);
      return fastpath_punt();
    }
    if (bpf_xdp_adjust_head(ctx, -(int)overhead)) {
      steer_count(ANYLB_STEER_CNT_FASTPATH_ADJUST_FAILED);
      return fastpath_punt();
    }
    void* data = (void*)(long)ctx->data;
    void* data_end = (void*)(long)ctx->data_end;
    // The new head, word by word (hdr_len is even: 34 to 66).
    __u16* to = data;
    const __u16* from = (const __u16*)v->hdr;
    for (int i = 0; i < ANYLB_FASTPATH_MAX_HDR / 2; i++) {
      if ((__u32)i * 2 >= v->hdr_len) break;
      __u16* p = to + i;
      barrier_var(p);
      if ((void*)(p + 1) > data_end) return XDP_DROP;  // Cannot happen.
      *p = from[i];
    }
    __u8* o = data + (l2_len == ETH_HLEN ? ETH_HLEN : DECAP_MAX_L2_LEN);
    if ((void*)(o + DECAP_IPV6_HLEN + DECAP_UDP_HLEN) > data_end)
      return XDP_DROP;  // Cannot happen: the inner header follows.
    const __u16 udp_len = (__u16)(ip_len + DECAP_UDP_HLEN);
    if (!outer_v6) {
      struct iphdr* oh = (struct iphdr*)o;
      oh->tos = t->tos;
      oh->tot_len = bpf_htons((__u16)(ip_len + overhead));
      oh->check = 0;
      oh->check = csum_fold(fastpath_sum_words(oh, 10));
      if (gue) {
        struct udphdr* udp = (struct udphdr*)(o + DECAP_IPV4_MIN_HLEN);
        udp->len = bpf_htons(udp_len);  // Checksum 0 (the template's).
      }
    } else {
      __be32* first = (__be32*)o;
      __u32 label = bpf_ntohl(*first) & 0xfffff;
      *first = bpf_htonl((6u << 28) | ((__u32)t->tos << 20) | label);
      struct ipv6hdr* oh = (struct ipv6hdr*)o;
      oh->payload_len = bpf_htons((__u16)(ip_len + overhead - DECAP_IPV6_HLEN));
      if (gue) {
        struct udphdr* udp = (struct udphdr*)(o + DECAP_IPV6_HLEN);
        udp->len = bpf_htons(udp_len);
        udp->check = 0;
        __u32 sum = fastpath_sum_words(&oh->saddr, 16) +
                    bpf_htons(IPPROTO_UDP) + bpf_htons(udp_len) +
                    fastpath_sum_words(udp, 4) + inner_sum;
        __u16 check = csum_fold(sum);
        udp->check = check == 0 ? 0xffff : check;
      }
    }
  } else {
    return fastpath_punt();
  }
  fastpath_count_traffic(v, frame_len);
  steer_count(ANYLB_STEER_CNT_FASTPATH_TX);
  if (v->tx_port == 0) return XDP_TX;
  // A missing port (a bug of ours): the rewritten frame is dropped.
  return (int)bpf_redirect_map(&fastpath_tx_ports, v->tx_port, XDP_DROP);
}

// steer_xdp: see the file comment.
SEC("xdp")
int steer_xdp(struct xdp_md* ctx) {
  void* data = (void*)(long)ctx->data;
  void* data_end = (void*)(long)ctx->data_end;

  struct ethhdr* eth = data;
  if ((void*)(eth + 1) > data_end) {
    steer_count(ANYLB_STEER_CNT_PASS_MALFORMED);
    return XDP_PASS;
  }
  __be16 proto = eth->h_proto;
  __u32 l2_len = ETH_HLEN;
  if (steer_is_vlan_proto(proto)) {
    struct steer_vlan_tag* tag = data + ETH_HLEN;
    if ((void*)(tag + 1) > data_end) {
      steer_count(ANYLB_STEER_CNT_PASS_MALFORMED);
      return XDP_PASS;
    }
    proto = tag->encapsulated_proto;
    l2_len = DECAP_MAX_L2_LEN;
  }
  if (proto != bpf_htons(ETH_P_IP) && proto != bpf_htons(ETH_P_IPV6)) {
    steer_count(ANYLB_STEER_CNT_PASS_NOT_IP);
    return XDP_PASS;
  }

  // This program does not declare frags support, so the frame is linear.
  __u32 frame_len = (__u32)(data_end - data);
  if (frame_len < l2_len) return XDP_PASS;  // Cannot happen; for the verifier.
  struct steer_tuple t;
  __builtin_memset(&t, 0, sizeof(t));
  int error =
      proto == bpf_htons(ETH_P_IP)
          ? steer_parse_ipv4(data + l2_len, data_end, frame_len - l2_len, &t)
          : steer_parse_ipv6(data + l2_len, data_end, frame_len - l2_len, &t);
  if (error) {
    steer_count(ANYLB_STEER_CNT_PASS_MALFORMED);
    return XDP_PASS;
  }
  // The fast path first: an entry exists only for a flow to a VIP of the
  // current config (a config change makes its worker's entries stale), so
  // a hit needs no VIP lookup.
  int fast = fastpath_try(ctx, &t, l2_len, frame_len);
  if (fast >= 0) return fast;
  __u32 decision = steer_classify(&t);
  steer_count(decision);
  if (decision != ANYLB_STEER_CNT_STEER_VIP &&
      decision != ANYLB_STEER_CNT_STEER_LOCAL &&
      decision != ANYLB_STEER_CNT_STEER_NAT_REPLY)
    return XDP_PASS;
  // The flags' low bits are the action when the queue has no socket.
  long action = bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
  if (action != XDP_REDIRECT) steer_count(ANYLB_STEER_CNT_STEER_NO_SOCKET);
  return (int)action;
}

char LICENSE[] SEC("license") = "GPL";
