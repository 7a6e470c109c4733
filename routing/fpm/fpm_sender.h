// Test-only FPM client: what zebra does, under the test's control. Encodes
// netlink route and next-hop-object messages the way dplane_fpm_nl writes
// them, protobuf fpm.Messages (which Debian's zebra cannot send), frames
// them, and sends them — or any raw bytes — to an FpmServer.
//
// Threading: an FpmSender is used by one thread.

#ifndef ANYLB_ROUTING_FPM_FPM_SENDER_H_
#define ANYLB_ROUTING_FPM_FPM_SENDER_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/ip_address.h"
#include "routing/fpm/decoder.h"
#include "routing/fpm/frame.h"
#include "routing/netlink/messages.h"

namespace anylb::routing::fpm {

// NetlinkRouteSpec describes an RTM_NEWROUTE / RTM_DELROUTE message.
struct NetlinkRouteSpec {
  bool deleted = false;
  IpPrefix prefix;
  uint8_t type = 1;        // RTN_UNICAST; 6 = RTN_BLACKHOLE.
  uint32_t table = 254;    // RT_TABLE_MAIN.
  uint32_t priority = 20;  // RTA_PRIORITY, as zebra sends.
  std::vector<netlink::RouteNextHop> next_hops;  // >1: RTA_MULTIPATH.
  uint32_t nh_id = 0;  // RTA_NH_ID instead of next hops.
};

// EncodeNetlinkRoute returns the netlink message (header included).
std::vector<uint8_t> EncodeNetlinkRoute(const NetlinkRouteSpec& spec);

// EncodeNetlinkNextHop returns an RTM_NEWNEXTHOP (or RTM_DELNEXTHOP)
// message for `object`.
std::vector<uint8_t> EncodeNetlinkNextHop(const NextHopObject& object,
                                          bool deleted = false);

// EncodeProtobufAddRoute returns a serialised fpm.Message ADD_ROUTE (vrf
// 0, unicast, protocol STATIC; kReject → BLACKHOLE). Next-hop weights are
// not encodable in protobuf and are dropped.
std::string EncodeProtobufAddRoute(
    const IpPrefix& prefix, const std::vector<netlink::RouteNextHop>& hops,
    netlink::RouteKind kind = netlink::RouteKind::kUnicast,
    int32_t metric = 20);

// EncodeProtobufDeleteRoute returns a serialised DELETE_ROUTE.
std::string EncodeProtobufDeleteRoute(const IpPrefix& prefix);

class FpmSender {
 public:
  // Connect opens a TCP connection to `server`.
  static absl::StatusOr<std::unique_ptr<FpmSender>> Connect(
      const Endpoint& server);

  FpmSender(const FpmSender&) = delete;
  FpmSender& operator=(const FpmSender&) = delete;
  ~FpmSender();

  // SendRaw writes `bytes` as they are.
  absl::Status SendRaw(std::span<const uint8_t> bytes);

  // SendFrame writes `payload` with an FPM header.
  absl::Status SendFrame(FrameType type, std::span<const uint8_t> payload);
  absl::Status SendNetlink(std::span<const uint8_t> message) {
    return SendFrame(FrameType::kNetlink, message);
  }
  absl::Status SendProtobuf(const std::string& message) {
    return SendFrame(
        FrameType::kProtobuf,
        std::span<const uint8_t>(
            reinterpret_cast<const uint8_t*>(message.data()), message.size()));
  }

  // WaitForClose returns true once the server has closed the connection
  // (end of stream or reset), false if it is still open after `timeout`.
  bool WaitForClose(absl::Duration timeout);

 private:
  explicit FpmSender(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace anylb::routing::fpm

#endif  // ANYLB_ROUTING_FPM_FPM_SENDER_H_
