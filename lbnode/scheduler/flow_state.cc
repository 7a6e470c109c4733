#include "lbnode/scheduler/flow_state.h"

#include <cstdint>
#include <string_view>

#include "lbnode/scheduler/flow_key.h"

namespace anylb::scheduler {
namespace {

// Short names for the transition tables below.
constexpr FlowState NO = FlowState::kTcpNone;
constexpr FlowState ES = FlowState::kTcpEstablished;
constexpr FlowState SS = FlowState::kTcpSynSent;
constexpr FlowState SR = FlowState::kTcpSynRecv;
constexpr FlowState FW = FlowState::kTcpFinWait;
constexpr FlowState TW = FlowState::kTcpTimeWait;
constexpr FlowState CL = FlowState::kTcpClose;
constexpr FlowState CW = FlowState::kTcpCloseWait;
constexpr FlowState LA = FlowState::kTcpLastAck;

constexpr int kNumTcpStates = 9;  // kTcpNone .. kTcpLastAck
enum Event { kSyn, kFin, kAck, kRst, kNumEvents };

// The event a segment is, by IPVS's precedence (tcp_state_idx): RST, then
// SYN, then FIN, then ACK; -1 for none of them.
int EventOf(uint8_t flags) {
  if (flags & kTcpFlagRst) return kRst;
  if (flags & kTcpFlagSyn) return kSyn;
  if (flags & kTcpFlagFin) return kFin;
  if (flags & kTcpFlagAck) return kAck;
  return -1;
}

using Row = FlowState[kNumTcpStates];

// kNext[direction][event][state]: the rules of IPVS's tcp_states
// (ip_vs_proto_tcp.c), one row per event, one column per current state.
// The only change is marked (*): see NextTcpState in flow_state.h.
constexpr Row kNext[3][kNumEvents] = {
    // kClientToServerOnly (IPVS INPUT-ONLY: DR, TUN)
    //  NO  ES  SS  SR  FW  TW  CL  CW  LA
    {
        {SR, ES, ES, SR, SR, SR, SR, SR, SR},  // syn
        {CL, FW, SS, TW, FW, TW, CL, CW, LA},  // fin
        {SR, ES, SS, ES, FW, TW, CL, CW, CL},  // ack (*) NO → SR
        {CL, CL, CL, SR, CL, CL, CL, CL, LA},  // rst
    },
    // kClientToServer (IPVS INPUT: NAT, FULLNAT)
    {
        {SR, ES, ES, SR, SR, SR, SR, SR, SR},  // syn
        {CL, CW, SS, TW, TW, TW, CL, CW, LA},  // fin
        {SR, ES, SS, ES, FW, TW, CL, CW, CL},  // ack (*) NO → SR
        {CL, CL, CL, SR, CL, CL, CL, CL, LA},  // rst
    },
    // kServerToClient (IPVS OUTPUT: NAT, FULLNAT)
    {
        {SS, ES, SS, SR, SS, SS, SS, SS, SS},  // syn
        {TW, FW, SS, TW, FW, TW, CL, TW, LA},  // fin
        {ES, ES, SS, ES, FW, TW, CL, CW, LA},  // ack
        {CL, CL, SS, CL, CL, TW, CL, CL, CL},  // rst
    },
};

static_assert(static_cast<int>(LA) == kNumTcpStates - 1);
static_assert(static_cast<int>(NO) == 0);

}  // namespace

std::string_view FlowStateName(FlowState state) {
  switch (state) {
    case FlowState::kTcpNone:
      return "NONE";
    case FlowState::kTcpEstablished:
      return "ESTABLISHED";
    case FlowState::kTcpSynSent:
      return "SYN_SENT";
    case FlowState::kTcpSynRecv:
      return "SYN_RECV";
    case FlowState::kTcpFinWait:
      return "FIN_WAIT";
    case FlowState::kTcpTimeWait:
      return "TIME_WAIT";
    case FlowState::kTcpClose:
      return "CLOSE";
    case FlowState::kTcpCloseWait:
      return "CLOSE_WAIT";
    case FlowState::kTcpLastAck:
      return "LAST_ACK";
    case FlowState::kUdp:
      return "UDP";
    case FlowState::kOther:
      return "OTHER";
  }
  return "INVALID";
}

FlowState NextTcpState(FlowState state, uint8_t tcp_flags,
                       TcpDirection direction) {
  const int s = static_cast<int>(state);
  if (s >= kNumTcpStates) return state;  // UDP, OTHER, or invalid
  const int event = EventOf(tcp_flags);
  if (event < 0) return FlowState::kTcpClose;
  const int d = static_cast<int>(direction);
  if (d > 2) return state;
  return kNext[d][event][s];
}

FlowState InitialFlowState(uint8_t protocol, uint8_t tcp_flags,
                           TcpDirection direction) {
  switch (protocol) {
    case kProtoTcp:
      return NextTcpState(FlowState::kTcpNone, tcp_flags, direction);
    case kProtoUdp:
      return FlowState::kUdp;
    default:
      return FlowState::kOther;
  }
}

}  // namespace anylb::scheduler
