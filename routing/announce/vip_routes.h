// VipRoutes: the VIP routes on the TUN device — one kernel route per
// announced VIP (IPv4 /32, IPv6 /128) and per announced FULLNAT local-address
// prefix (as configured: "192.0.2.64/28"), main table, `proto static`, scope
// link, through the device, added and removed over rtnetlink. zebra sees
// them as kernel routes; FRR's `redistribute kernel route-map ANYLB-*`
// announces them.
//
// VipRoutes is the Announcer's RouteHolder; tests give the Announcer a fake.
//
// Threading: one thread at a time (the Announcer's). The netlink socket is
// opened in the network namespace of the thread that calls Create.

#ifndef ANYLB_ROUTING_ANNOUNCE_VIP_ROUTES_H_
#define ANYLB_ROUTING_ANNOUNCE_VIP_ROUTES_H_

#include <memory>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/ip_address.h"

namespace anylb::routing::netlink {
class NetlinkSocket;
}

namespace anylb::routing::announce {

// RouteHolder holds the routes that make VIPs announced.
class RouteHolder {
 public:
  virtual ~RouteHolder() = default;
  // Add installs the route for `vip` (replacing an equal one: idempotent).
  virtual absl::Status Add(const IpAddress& vip) = 0;
  // Remove deletes it; a route that is already gone is not an error.
  virtual absl::Status Remove(const IpAddress& vip) = 0;
  // AddPrefix / RemovePrefix: the same for a prefix (FULLNAT local
  // addresses).
  virtual absl::Status AddPrefix(const IpPrefix& prefix) = 0;
  virtual absl::Status RemovePrefix(const IpPrefix& prefix) = 0;
};

// VipRoutes: see the file comment.
class VipRoutes : public RouteHolder {
 public:
  static absl::StatusOr<std::unique_ptr<VipRoutes>> Create(
      int ifindex, std::string device_name);
  ~VipRoutes() override;

  absl::Status Add(const IpAddress& vip) override;
  absl::Status Remove(const IpAddress& vip) override;
  absl::Status AddPrefix(const IpPrefix& prefix) override;
  absl::Status RemovePrefix(const IpPrefix& prefix) override;

 private:
  VipRoutes(std::unique_ptr<netlink::NetlinkSocket> socket, int ifindex,
            std::string device_name);
  absl::Status Send(bool add, const IpPrefix& prefix);

  std::unique_ptr<netlink::NetlinkSocket> socket_;
  int ifindex_;
  std::string device_name_;
};

}  // namespace anylb::routing::announce

#endif  // ANYLB_ROUTING_ANNOUNCE_VIP_ROUTES_H_
