// FlowState and the TCP state machine of a director (IPVS's view of TCP).

#ifndef ANYLB_LBNODE_SCHEDULER_FLOW_STATE_H_
#define ANYLB_LBNODE_SCHEDULER_FLOW_STATE_H_

#include <cstdint>
#include <string_view>

namespace anylb::scheduler {

// FlowState is the state of one flow as the director sees it. The TCP states
// and their numbering are IPVS's (IP_VS_TCP_S_* in
// include/uapi/linux/ip_vs.h, without LISTEN and SYNACK, which only IPVS's
// FTP helper and its secure_tcp mode use), so `ipvsadm -lc` names map one to
// one; UDP and every other protocol have one state each.
enum class FlowState : uint8_t {
  kTcpNone = 0,  // before the first packet; never stored in a flow table
  kTcpEstablished = 1,
  kTcpSynSent = 2,  // NAT/FULLNAT: the server's SYN came first
  kTcpSynRecv = 3,  // half-open: the client's SYN (or one bare ACK) seen
  kTcpFinWait = 4,
  kTcpTimeWait = 5,
  kTcpClose = 6,  // reset, or closed before it was established
  kTcpCloseWait = 7,
  kTcpLastAck = 8,
  kUdp = 9,
  kOther = 10,  // ICMP, ICMPv6 and any other protocol
};

inline constexpr int kNumFlowStates = 11;

// FlowStateName is ipvsadm -lc's name of the state ("ESTABLISHED",
// "SYN_RECV", "UDP", ...; "OTHER" for non-TCP/UDP, "INVALID" out of range).
std::string_view FlowStateName(FlowState state);

// IsValidFlowState: `state` is one of the enumerators above.
constexpr bool IsValidFlowState(FlowState state) {
  return static_cast<uint8_t>(state) < kNumFlowStates;
}

// IsActive: the flow counts in its backend's `active` (IPVS's ActiveConn);
// every other stored state counts in `inactive` (InActConn). As in IPVS
// (set_tcp_state, IP_VS_CONN_F_INACTIVE), only TCP ESTABLISHED is active;
// UDP and ICMP flows are always inactive.
constexpr bool IsActive(FlowState state) {
  return state == FlowState::kTcpEstablished;
}

// IsUnconfirmed: the flow has not shown, to a director that may see only one
// direction, that a real TCP handshake happened — SYN_SENT, SYN_RECV — or it
// was reset/closed before or after that (CLOSE). These are what a SYN, ACK
// or RST flood with spoofed sources creates; the flow table bounds their
// share and never evicts a confirmed flow to make room for one (see
// FlowTable). Every other state, UDP and OTHER included, is confirmed.
constexpr bool IsUnconfirmed(FlowState state) {
  return state == FlowState::kTcpNone || state == FlowState::kTcpSynSent ||
         state == FlowState::kTcpSynRecv || state == FlowState::kTcpClose;
}

// ActivityChange is what a state change did to the flow's IsActive(): the
// worker moves one count between its backend's `active` and `inactive`.
enum class ActivityChange : uint8_t {
  kNone,
  kBecameActive,    // inactive → active: --inactive, ++active
  kBecameInactive,  // active → inactive: --active, ++inactive
};

// ActivityChangeOf is the ActivityChange of going from `from` to `to`.
constexpr ActivityChange ActivityChangeOf(FlowState from, FlowState to) {
  if (IsActive(from) == IsActive(to)) return ActivityChange::kNone;
  return IsActive(to) ? ActivityChange::kBecameActive
                      : ActivityChange::kBecameInactive;
}

// TCP header flag bits (RFC 9293 §3.1), as in byte 13 of the TCP header.
inline constexpr uint8_t kTcpFlagFin = 0x01;
inline constexpr uint8_t kTcpFlagSyn = 0x02;
inline constexpr uint8_t kTcpFlagRst = 0x04;
inline constexpr uint8_t kTcpFlagPsh = 0x08;
inline constexpr uint8_t kTcpFlagAck = 0x10;

// TcpDirection is which way a segment goes and what the director sees.
enum class TcpDirection : uint8_t {
  // DR and TUN: the client → server half of a flow whose replies bypass the
  // director (IPVS's IP_VS_DIR_INPUT_ONLY, for IP_VS_CONN_F_NOOUTPUT flows).
  kClientToServerOnly,
  // NAT and FULLNAT: both halves pass the director (IP_VS_DIR_INPUT and
  // IP_VS_DIR_OUTPUT).
  kClientToServer,
  kServerToClient,
};

// NextTcpState is the state after a TCP segment with `tcp_flags` going
// `direction` reaches a flow in `state`: IPVS's tcp_states table
// (net/netfilter/ipvs/ip_vs_proto_tcp.c, set_tcp_state, the default
// non-secure_tcp table), with the same flag precedence RST > SYN > FIN > ACK
// and the same rule that a segment with none of them moves the flow to
// CLOSE. Non-TCP states are returned unchanged.
//
// One deliberate difference: a flow first seen with a bare ACK from the
// client (kTcpNone + ACK, client → server) goes to SYN_RECV, not IPVS's
// CLOSE. Such a flow is mid-stream pickup — an anycast fleet's ECMP hash
// moved it here from another director — and must stay on its backend for as
// long as it lives; IPVS (sloppy_tcp) would keep it in CLOSE, inactive with a
// 10 s timeout, forever. Here its second client ACK confirms it
// (SYN_RECV + ACK → ESTABLISHED), while a one-packet-per-tuple ACK flood
// stays in the unconfirmed class that the flow table bounds.
FlowState NextTcpState(FlowState state, uint8_t tcp_flags,
                       TcpDirection direction);

// InitialFlowState is the state of a new flow whose first packet has
// `protocol` (kProtoTcp, kProtoUdp, ...) and, for TCP, `tcp_flags` going
// `direction`: NextTcpState(kTcpNone, ...) for TCP, kUdp, or kOther.
FlowState InitialFlowState(uint8_t protocol, uint8_t tcp_flags,
                           TcpDirection direction);

}  // namespace anylb::scheduler

#endif  // ANYLB_LBNODE_SCHEDULER_FLOW_STATE_H_
