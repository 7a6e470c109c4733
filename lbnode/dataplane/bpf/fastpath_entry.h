// MakeFastPathEntry: the fast-path map entry (steer_structs.h) that makes
// steer_xdp do to a flow's later packets what the engine did to one of
// them, built from the engine's output frame alone.
//
// The engine's DR output is the input frame with new MACs; its TUN output
// is Ethernet + outer headers + the input datagram untouched. So the
// flow's 5-tuple is read from the output (the datagram itself for DR, the
// inner one for TUN) and the rewrite is the output's first bytes: the MACs
// (DR), or the whole new head (TUN), which steer_xdp copies and patches per
// packet (lengths, TOS, checksums). Stateless, no allocation; any thread.

#ifndef ANYLB_LBNODE_DATAPLANE_BPF_FASTPATH_ENTRY_H_
#define ANYLB_LBNODE_DATAPLANE_BPF_FASTPATH_ENTRY_H_

#include <cstdint>
#include <span>

#include "lbnode/dataplane/bpf/steer_structs.h"

namespace anylb::dataplane::bpf {

// FastPathMode is the forwarding mode of the flow's service.
enum class FastPathMode : uint8_t { kDr, kTun };

// FastPathEntry is one map key and value.
struct FastPathEntry {
  anylb_fastpath_key key;
  anylb_fastpath_value value;
};

// MakeFastPathEntry fills `*entry` from `frame`, the engine's kTransmit
// output for a packet of a DR or TUN flow (not an ICMP reply to the
// sender). `mtu` is the node's (NodeConfig::mtu): TUN packets whose inner
// datagram would exceed it once encapsulated stay on the engine's path.
// Sets mode, flags, l2_len, hdr_len, hdr, max_inner_len and the key; the
// caller sets owner_queue, generation, tx_port, slot and last_seen_ns
// (the rest is zero). Returns false, leaving nothing to install, when the
// flow's packets are not ones steer_xdp rewrites: not TCP/UDP, a fragment,
// IPv6 with extension headers, or a frame it cannot read.
bool MakeFastPathEntry(std::span<const uint8_t> frame, FastPathMode mode,
                       uint32_t mtu, FastPathEntry* entry);

}  // namespace anylb::dataplane::bpf

#endif  // ANYLB_LBNODE_DATAPLANE_BPF_FASTPATH_ENTRY_H_
