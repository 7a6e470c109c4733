// steer_structs.h: the contract between the director's XDP steering program
// (steer.bpf.c) and its C++ loader (steer_loader.cc).
//
// Everything both sides must agree on lives here and only here: map names,
// map key and value layouts, limits, and the counter indices with their
// printable names. The header is plain C (compiled by clang -target bpf) and
// valid C++; the C++ side checks every size and offset with static_assert
// (STYLE.md item 6), so a layout change fails to compile instead of silently
// misreading a map.

#ifndef ANYLB_LBNODE_DATAPLANE_BPF_STEER_STRUCTS_H_
#define ANYLB_LBNODE_DATAPLANE_BPF_STEER_STRUCTS_H_

#include <linux/types.h>

// Names of the maps in the object file (bpf_object__find_map_by_name).
#define ANYLB_STEER_MAP_VIPS "steer_vips"
#define ANYLB_STEER_MAP_VIP_ADDRS "steer_vip_addrs"
#define ANYLB_STEER_MAP_LOCALS "steer_locals"
#define ANYLB_STEER_MAP_NAT_BACKENDS "steer_nat_backends"
#define ANYLB_STEER_MAP_XSKS "xsks_map"
#define ANYLB_STEER_MAP_COUNTERS "steer_counters"

// The program's name in the object file.
#define ANYLB_STEER_PROG_XDP "steer_xdp"

// Map sizes.
#define ANYLB_STEER_MAX_VIPS 4096           // (VIP, port, proto) entries.
#define ANYLB_STEER_MAX_VIP_ADDRS 4096      // Distinct VIP addresses.
#define ANYLB_STEER_MAX_LOCALS 256          // FULLNAT local addresses.
#define ANYLB_STEER_MAX_NAT_BACKENDS 65536  // NAT-mode real servers.
#define ANYLB_STEER_MAX_QUEUES 64           // RX queues with an AF_XDP socket.

// Values of the keys' `family`.
#define ANYLB_STEER_FAMILY_V4 4
#define ANYLB_STEER_FAMILY_V6 6

// anylb_steer_l4_key is the key of ANYLB_STEER_MAP_VIPS (a destination: VIP,
// port, protocol) and of ANYLB_STEER_MAP_NAT_BACKENDS (a source: a NAT-mode
// real server's address, port, protocol). Port 0 is a wildcard: a VIP entry
// with port 0 matches every port of that VIP and protocol (and a backend
// entry with port 0 every source port). Both writers zero the whole key
// first, so the unused tail of an IPv4 address always hashes the same.
struct anylb_steer_l4_key {
  __u8 family;    // ANYLB_STEER_FAMILY_V4 or ANYLB_STEER_FAMILY_V6.
  __u8 proto;     // IP protocol number (IPPROTO_TCP, IPPROTO_UDP, ...).
  __u16 port;     // HOST byte order; 0 = every port.
  __u8 addr[16];  // Network byte order; IPv4 uses addr[0..3], the rest zero.
};

// anylb_steer_addr_key is the key of ANYLB_STEER_MAP_LOCALS and
// ANYLB_STEER_MAP_VIP_ADDRS: an address alone.
struct anylb_steer_addr_key {
  __u8 family;    // ANYLB_STEER_FAMILY_V4 or ANYLB_STEER_FAMILY_V6.
  __u8 pad[3];    // Zero.
  __u8 addr[16];  // Network byte order; IPv4 uses addr[0..3], the rest zero.
};

// anylb_steer_value is the value of every hash map above. For
// ANYLB_STEER_MAP_VIP_ADDRS `count` is the number of VIP entries with that
// address (kept by the loader); elsewhere it is reserved: write zero.
struct anylb_steer_value {
  __u32 count;
};

// ANYLB_STEER_MAP_XSKS is an XSKMAP indexed by RX queue: the AF_XDP socket of
// each queue, inserted by the AF_XDP layer. A queue without a socket makes
// bpf_redirect_map() fall back to XDP_PASS (counted as steer_no_socket).

// ANYLB_STEER_COUNTERS(X) lists every counter as X(ENUM_SUFFIX, "name").
// ANYLB_STEER_MAP_COUNTERS is a per-CPU array of __u64 indexed by
// enum anylb_steer_counter; the C++ side sums the CPUs. Every frame goes up
// exactly one of the steer_* / pass_* counters (the DECISION); a steered
// frame whose queue has no socket ALSO goes up steer_no_socket (and then
// reaches the kernel).
#define ANYLB_STEER_COUNTERS(X)                                               \
  /* Destination (address, port, proto) is a VIP entry (or its port-0     */  \
  /* wildcard); ICMP/ICMPv6 to a VIP address; a fragment to a VIP address. */ \
  X(STEER_VIP, "steer_vip")                                                   \
  /* Destination is a FULLNAT local address (any protocol).               */  \
  X(STEER_LOCAL, "steer_local")                                               \
  /* Source (address, port, proto) is a NAT-mode real server: a reply.   */   \
  X(STEER_NAT_REPLY, "steer_nat_reply")                                       \
  /* A steered frame whose RX queue has no AF_XDP socket: the kernel      */  \
  /* got it (bpf_redirect_map fell back to XDP_PASS).                     */  \
  X(STEER_NO_SOCKET, "steer_no_socket")                                       \
  /* IP, but nothing of ours: BGP, SSH, health-check replies, ...         */  \
  X(PASS_NO_MATCH, "pass_no_match")                                           \
  /* Not IPv4/IPv6 after at most one VLAN tag: ARP, LLDP, two tags, ...   */  \
  X(PASS_NOT_IP, "pass_not_ip")                                               \
  /* IPv6 Neighbor Discovery / router messages (RFC 4861): always the     */  \
  /* kernel's, whatever the destination.                                  */  \
  X(PASS_ND, "pass_nd")                                                       \
  /* Truncated or inconsistent IP/TCP/UDP/ICMP header: passed, the        */  \
  /* kernel drops and counts it.                                          */  \
  X(PASS_MALFORMED, "pass_malformed")

// anylb_steer_counter indexes ANYLB_STEER_MAP_COUNTERS.
#define ANYLB_STEER_COUNTER_ENUM_(suffix, name) ANYLB_STEER_CNT_##suffix,
enum anylb_steer_counter {
  ANYLB_STEER_COUNTERS(ANYLB_STEER_COUNTER_ENUM_)
      ANYLB_STEER_CNT_MAX  // The number of counters.
};
#undef ANYLB_STEER_COUNTER_ENUM_

#ifdef __cplusplus
#include <cstddef>

static_assert(sizeof(anylb_steer_l4_key) == 20);
static_assert(offsetof(anylb_steer_l4_key, family) == 0);
static_assert(offsetof(anylb_steer_l4_key, proto) == 1);
static_assert(offsetof(anylb_steer_l4_key, port) == 2);
static_assert(offsetof(anylb_steer_l4_key, addr) == 4);
static_assert(sizeof(anylb_steer_addr_key) == 20);
static_assert(offsetof(anylb_steer_addr_key, family) == 0);
static_assert(offsetof(anylb_steer_addr_key, pad) == 1);
static_assert(offsetof(anylb_steer_addr_key, addr) == 4);
static_assert(sizeof(anylb_steer_value) == 4);
static_assert(offsetof(anylb_steer_value, count) == 0);
#endif

#endif  // ANYLB_LBNODE_DATAPLANE_BPF_STEER_STRUCTS_H_
