// decap_consts.h: protocol numbers, header sizes and helper flags used by
// the real-server decapsulation program. BPF-only (the C++ side needs only
// decap_structs.h).

#ifndef ANYLB_LBNODE_DATAPLANE_BPF_DECAP_CONSTS_H_
#define ANYLB_LBNODE_DATAPLANE_BPF_DECAP_CONSTS_H_

#include <linux/bpf.h>
#include <linux/if_ether.h>

// IEEE 802.1Q / 802.1ad tag: TCI + inner EtherType.
#define DECAP_VLAN_HLEN 4
// The longest L2 header the XDP program keeps: Ethernet + one tag.
#define DECAP_MAX_L2_LEN (ETH_HLEN + DECAP_VLAN_HLEN)

// IP protocol numbers (IANA): IPv4 encapsulation (RFC 2003), IPv6
// encapsulation (RFC 2473), UDP (RFC 768), IPv6 fragment header (RFC 8200
// §4.5).
#define DECAP_IPPROTO_IPIP 4
#define DECAP_IPPROTO_IPV6 41
#define DECAP_IPPROTO_UDP 17
#define DECAP_IPPROTO_FRAGMENT 44

// IPv4 header (RFC 791 §3.1): minimum size, the flags/fragment-offset field's
// More Fragments bit and offset mask (host order).
#define DECAP_IPV4_MIN_HLEN 20
#define DECAP_IPV4_MAX_HLEN 60
#define DECAP_IPV4_MF 0x2000
#define DECAP_IPV4_OFFSET_MASK 0x1fff

#define DECAP_IPV6_HLEN 40
#define DECAP_UDP_HLEN 8

// GUE (draft-ietf-intarea-gue). The first two bits of the first byte after
// the UDP header are the variant: 0 is a GUE header (§3.1), 1 is a bare IP
// packet (§4.1; the first nibble is then the IP version, 4 or 6).
#define DECAP_GUE_V0_HLEN 4
#define DECAP_GUE_VARIANT_SHIFT 6
#define DECAP_GUE_C_BIT 0x20      // Control message (§3.1).
#define DECAP_GUE_HLEN_MASK 0x1f  // Extension-field length in 32-bit words.

// The most header bytes the program reads, from the start of the frame:
// Ethernet, outer IPv4 with the longest options (or IPv6 + a fragment
// header), UDP, GUE v0, and the inner IPv6 header. The tc program makes
// this much linear (bpf_skb_pull_data) before parsing.
#define DECAP_MAX_HDR_LEN                                                \
  (ETH_HLEN + DECAP_IPV4_MAX_HLEN + DECAP_UDP_HLEN + DECAP_GUE_V0_HLEN + \
   DECAP_IPV6_HLEN)

// bpf_skb_adjust_room() flags that set skb->protocol to the inner family
// when decapsulation changes it. Linux 6.3+; the uapi headers this is built
// against (6.1) predate them, hence our own names for the same values.
#define DECAP_ADJ_ROOM_DECAP_L3_IPV4 (1ULL << 7)
#define DECAP_ADJ_ROOM_DECAP_L3_IPV6 (1ULL << 8)

#endif  // ANYLB_LBNODE_DATAPLANE_BPF_DECAP_CONSTS_H_
