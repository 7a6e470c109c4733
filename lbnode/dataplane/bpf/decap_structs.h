// decap_structs.h: the contract between the real-server decapsulation BPF
// program (decap.bpf.c) and its C++ loader (decap_loader.cc).
//
// Everything both sides must agree on lives here and only here: map names,
// map key and value layouts, limits, and the counter indices with their
// printable names. The header is plain C (it is compiled by clang -target bpf)
// and also valid C++; the C++ side checks every size and offset with
// static_assert (STYLE.md item 6), so a change that breaks the layout fails to
// compile instead of silently misreading a map.

#ifndef ANYLB_LBNODE_DATAPLANE_BPF_DECAP_STRUCTS_H_
#define ANYLB_LBNODE_DATAPLANE_BPF_DECAP_STRUCTS_H_

#include <linux/types.h>

// Names of the maps in the object file (bpf_object__find_map_by_name).
#define ANYLB_DECAP_MAP_DSTS "decap_dsts"
#define ANYLB_DECAP_MAP_GUE_PORTS "decap_gue_ports"
#define ANYLB_DECAP_MAP_COUNTERS "decap_counters"

// Names of the two programs in the object file.
#define ANYLB_DECAP_PROG_XDP "decap_xdp"
#define ANYLB_DECAP_PROG_TC "decap_tc"

// Map sizes. A real server has a handful of addresses and GUE ports.
#define ANYLB_DECAP_MAX_DSTS 64
#define ANYLB_DECAP_MAX_GUE_PORTS 16

// The UDP port GUE uses when the operator names none
// (draft-ietf-intarea-gue §5).
#define ANYLB_DECAP_DEFAULT_GUE_PORT 6080

// Values of anylb_decap_dst_key.family.
#define ANYLB_DECAP_FAMILY_V4 4
#define ANYLB_DECAP_FAMILY_V6 6

// anylb_decap_dst_key is the key of the ANYLB_DECAP_MAP_DSTS hash map: one
// address of this server that tunnelled packets may be sent to (the OUTER
// destination). Packets to any other outer destination are never touched.
// Both writers zero the whole key first, so padding and the unused tail of an
// IPv4 key always hash the same.
struct anylb_decap_dst_key {
  __u8 family;    // ANYLB_DECAP_FAMILY_V4 or ANYLB_DECAP_FAMILY_V6.
  __u8 pad[3];    // Zero.
  __u8 addr[16];  // Network byte order; IPv4 uses addr[0..3], the rest zero.
};

// anylb_decap_dst_value is the value of ANYLB_DECAP_MAP_DSTS. Reserved for
// per-address options; write zero.
struct anylb_decap_dst_value {
  __u32 flags;
};

// ANYLB_DECAP_MAP_GUE_PORTS is a hash map from a UDP destination port (__u16,
// HOST byte order) to a __u8 that is 1 when GUE on that port is decapsulated.
// An empty map disables GUE.

// ANYLB_DECAP_COUNTERS(X) lists every counter as X(ENUM_SUFFIX, "name").
// ANYLB_DECAP_MAP_COUNTERS is a per-CPU array of __u64 indexed by
// enum anylb_decap_counter; the C++ side sums the CPUs. The object is
// embedded in the binary that reads it, so the order is free.
//
//   decap_*     decapsulated and passed to the stack (per encapsulation)
//   pass_*      not ours to decapsulate: passed to the stack untouched
//   drop_*      a tunnel packet to one of our addresses that cannot be
//               decapsulated (malformed or unsupported): dropped
#define ANYLB_DECAP_COUNTERS(X)                                                \
  /* IP protocol 4: IPv4 inner (IPIP, RFC 2003; 4in6 over IPv6, RFC 2473). */  \
  X(DECAP_IPIP, "decap_ipip")                                                  \
  /* IP protocol 41: IPv6 inner (IP6IP6, RFC 2473; 6in4, RFC 4213). */         \
  X(DECAP_IP6IP6, "decap_ip6ip6")                                              \
  /* GUE variant 1: the inner IP header right after UDP. */                    \
  X(DECAP_GUE_V1, "decap_gue_v1")                                              \
  /* GUE variant 0 with a 4-byte header and no extension fields. */            \
  X(DECAP_GUE_V0, "decap_gue_v0")                                              \
  /* Not IPv4/IPv6 (ARP, LLDP, ...). */                                        \
  X(PASS_NOT_IP, "pass_not_ip")                                                \
  /* IP, but not protocol 4/41 nor UDP to a GUE port. */                       \
  X(PASS_NOT_TUNNEL, "pass_not_tunnel")                                        \
  /* A tunnel packet whose outer destination is not in the map. */             \
  X(PASS_NOT_LOCAL, "pass_not_local")                                          \
  /* A fragment of a tunnel-protocol packet to one of our addresses (the   */  \
  /* kernel reassembles it but cannot decapsulate it).                      */ \
  X(PASS_FRAGMENT, "pass_fragment")                                            \
  /* The outer IP header is malformed (bad version or IHL, lengths past the */ \
  /* frame): the kernel's IP layer drops it and counts it itself.           */ \
  X(PASS_OUTER_MALFORMED, "pass_outer_malformed")                              \
  /* More than one VLAN tag (XDP), or a tag left in the data at tc. */         \
  X(PASS_VLAN, "pass_vlan")                                                    \
  /* Outer IPv4 header checksum wrong (RFC 791). */                            \
  X(DROP_OUTER_CHECKSUM, "drop_outer_checksum")                                \
  /* UDP header truncated, or UDP length inconsistent with the IP length. */   \
  X(DROP_GUE_MALFORMED, "drop_gue_malformed")                                  \
  /* GUE control message, extension fields, version 2/3, unknown proto. */     \
  X(DROP_GUE_UNSUPPORTED, "drop_gue_unsupported")                              \
  /* The inner IP header or the inner packet is cut short. */                  \
  X(DROP_INNER_TRUNCATED, "drop_inner_truncated")                              \
  /* The inner version nibble does not match the encapsulation. */             \
  X(DROP_INNER_VERSION, "drop_inner_version")                                  \
  /* Inner IPv4 IHL < 5 or total length < IHL. */                              \
  X(DROP_INNER_BAD_HEADER, "drop_inner_bad_header")                            \
  /* bpf_xdp_adjust_head / bpf_skb_adjust_room failed (e.g. a kernel       */  \
  /* without BPF_F_ADJ_ROOM_DECAP_L3_* for a family-changing decap at tc). */  \
  X(DROP_ADJUST_FAILED, "drop_adjust_failed")

// anylb_decap_counter indexes ANYLB_DECAP_MAP_COUNTERS.
#define ANYLB_DECAP_COUNTER_ENUM_(suffix, name) ANYLB_DECAP_CNT_##suffix,
enum anylb_decap_counter {
  ANYLB_DECAP_COUNTERS(ANYLB_DECAP_COUNTER_ENUM_)
      ANYLB_DECAP_CNT_MAX  // The number of counters.
};
#undef ANYLB_DECAP_COUNTER_ENUM_

#ifdef __cplusplus
#include <cstddef>

static_assert(sizeof(anylb_decap_dst_key) == 20);
static_assert(offsetof(anylb_decap_dst_key, family) == 0);
static_assert(offsetof(anylb_decap_dst_key, pad) == 1);
static_assert(offsetof(anylb_decap_dst_key, addr) == 4);
static_assert(sizeof(anylb_decap_dst_value) == 4);
static_assert(offsetof(anylb_decap_dst_value, flags) == 0);
#endif

#endif  // ANYLB_LBNODE_DATAPLANE_BPF_DECAP_STRUCTS_H_
