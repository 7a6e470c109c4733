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
#define ANYLB_FASTPATH_MAP_FLOWS "fastpath_flows"
#define ANYLB_FASTPATH_MAP_TX_PORTS "fastpath_tx_ports"
#define ANYLB_FASTPATH_MAP_GENERATIONS "fastpath_generations"
#define ANYLB_FASTPATH_MAP_TRAFFIC "fastpath_traffic"

// The program's name in the object file.
#define ANYLB_STEER_PROG_XDP "steer_xdp"

// Map sizes.
#define ANYLB_STEER_MAX_VIPS 4096           // (VIP, port, proto) entries.
#define ANYLB_STEER_MAX_VIP_ADDRS 4096      // Distinct VIP addresses.
#define ANYLB_STEER_MAX_LOCALS 256          // FULLNAT local addresses.
#define ANYLB_STEER_MAX_NAT_BACKENDS 65536  // NAT-mode real servers.
#define ANYLB_STEER_MAX_QUEUES 64           // RX queues with an AF_XDP socket.
// Fast-path flows by default (the loader may size the map otherwise).
#define ANYLB_FASTPATH_DEFAULT_FLOWS 262144
#define ANYLB_FASTPATH_MAX_TX_PORTS 64  // Egress interfaces (DEVMAP_HASH).
// Traffic slots per RX queue: one per (service, backend) of the queue's
// snapshot; a flow whose (service, backend) has no slot is not installed.
#define ANYLB_FASTPATH_SLOTS_PER_QUEUE 1024
#define ANYLB_FASTPATH_MAX_HDR 72  // Ethernet + VLAN + IPv6 + UDP = 66.

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

// --- The fast path (Katran-style) for established DR and TUN flows ---
//
// The worker installs, for a flow the engine has established, the rewrite
// the engine applies to its packets; steer_xdp then rewrites and transmits
// the flow's later packets itself (XDP_TX, or bpf_redirect_map into
// ANYLB_FASTPATH_MAP_TX_PORTS), and they never reach AF_XDP.

// Values of anylb_fastpath_value.mode.
#define ANYLB_FASTPATH_MODE_DR 1
#define ANYLB_FASTPATH_MODE_TUN 2

// Bits of anylb_fastpath_value.flags.
#define ANYLB_FASTPATH_OUTER_V6 0x01  // TUN: the outer header is IPv6.
#define ANYLB_FASTPATH_GUE 0x02       // TUN: an outer UDP header follows.

// anylb_fastpath_key is the key of ANYLB_FASTPATH_MAP_FLOWS: a flow's
// 5-tuple, byte for byte the C++ scheduler::FlowKey (flow_key.h), so the
// worker can look the engine's flow up with a map key as it is.
struct anylb_fastpath_key {
  __u8 saddr[16];  // Network order; IPv4 uses [0..3], the rest zero.
  __u8 daddr[16];
  __u16 sport;  // HOST order.
  __u16 dport;
  __u8 proto;   // IPPROTO_TCP or IPPROTO_UDP.
  __u8 family;  // 0 = IPv4, 1 = IPv6 (IpFamily), NOT ANYLB_STEER_FAMILY_*.
  __u8 pad[2];  // Zero.
};

// anylb_fastpath_value is the rewrite of one flow, written by the worker
// (all but the last three fields) and read by steer_xdp, which updates
// last_seen_ns, packets and bytes. The worker's writes replace the whole
// value (the kernel copies it under the bucket lock).
struct anylb_fastpath_value {
  __u8 mode;            // ANYLB_FASTPATH_MODE_*.
  __u8 flags;           // ANYLB_FASTPATH_OUTER_V6 | ANYLB_FASTPATH_GUE.
  __u8 l2_len;          // 14, or 18 with an 802.1Q tag: the frame's and hdr's.
  __u8 hdr_len;         // DR: 12 (the MACs). TUN: l2_len + outer IP (+ UDP).
  __u16 max_inner_len;  // TUN: node MTU - overhead; DR: 0xffff.
  __u16 owner_queue;    // The RX queue whose worker installed it.
  __u32 generation;     // Valid while == fastpath_generations[owner_queue].
  __u32 tx_port;        // 0: XDP_TX; else an ifindex in fastpath_tx_ports.
  __u32 slot;  // Index into ANYLB_FASTPATH_MAP_TRAFFIC (service/backend).
  __u32 pad;
  // DR: destination MAC, source MAC. TUN: the frame's new head as the
  // engine built it for one packet of the flow: Ethernet (+ tag), outer
  // IPv4/IPv6, UDP for GUE. Per packet the program patches the lengths,
  // the TOS / traffic class, the IPv4 header checksum and the GUE-over-IPv6
  // UDP checksum.
  __u8 hdr[ANYLB_FASTPATH_MAX_HDR];
  __u64 last_seen_ns;  // bpf_ktime_get_ns() of the last packet (or install).
  __u64 packets;  // Frames sent by the fast path (plain adds: may miss a
  __u64 bytes;    // count if two CPUs race; the traffic slots do not).
};

// anylb_fastpath_traffic is one per-CPU slot of ANYLB_FASTPATH_MAP_TRAFFIC.
struct anylb_fastpath_traffic {
  __u64 packets;
  __u64 bytes;  // As received (the engine's TrafficCounters::bytes).
};

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
  X(PASS_MALFORMED, "pass_malformed")                                         \
  /* A fast-path flow hit: rewritten and transmitted by the program (a    */  \
  /* decision: such a frame goes up no steer_* counter).                  */  \
  X(FASTPATH_TX, "fastpath_tx")                                               \
  /* ALSO counted (the frame is steered as a VIP frame): a fast-path hit  */  \
  /* that went to AF_XDP: TCP SYN/FIN/RST, stale generation, too big, ... */  \
  X(FASTPATH_PUNT, "fastpath_punt")                                           \
  /* ALSO counted: a TUN hit whose headroom could not grow (to AF_XDP).   */  \
  X(FASTPATH_ADJUST_FAILED, "fastpath_adjust_failed")

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
static_assert(sizeof(anylb_fastpath_key) == 40);
static_assert(offsetof(anylb_fastpath_key, saddr) == 0);
static_assert(offsetof(anylb_fastpath_key, daddr) == 16);
static_assert(offsetof(anylb_fastpath_key, sport) == 32);
static_assert(offsetof(anylb_fastpath_key, dport) == 34);
static_assert(offsetof(anylb_fastpath_key, proto) == 36);
static_assert(offsetof(anylb_fastpath_key, family) == 37);
static_assert(sizeof(anylb_fastpath_value) == 24 + ANYLB_FASTPATH_MAX_HDR + 24);
static_assert(offsetof(anylb_fastpath_value, max_inner_len) == 4);
static_assert(offsetof(anylb_fastpath_value, owner_queue) == 6);
static_assert(offsetof(anylb_fastpath_value, generation) == 8);
static_assert(offsetof(anylb_fastpath_value, tx_port) == 12);
static_assert(offsetof(anylb_fastpath_value, slot) == 16);
static_assert(offsetof(anylb_fastpath_value, hdr) == 24);
static_assert(offsetof(anylb_fastpath_value, last_seen_ns) ==
              24 + ANYLB_FASTPATH_MAX_HDR);
static_assert(sizeof(anylb_fastpath_traffic) == 16);
#endif

#endif  // ANYLB_LBNODE_DATAPLANE_BPF_STEER_STRUCTS_H_
