#include "routing/announce/vip_routes.h"

#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "routing/netlink/netlink_socket.h"

namespace anylb::routing::announce {

absl::StatusOr<std::unique_ptr<VipRoutes>> VipRoutes::Create(
    int ifindex, std::string device_name) {
  ASSIGN_OR_RETURN(std::unique_ptr<netlink::NetlinkSocket> socket,
                   netlink::NetlinkSocket::Create());
  return std::unique_ptr<VipRoutes>(
      new VipRoutes(std::move(socket), ifindex, std::move(device_name)));
}

VipRoutes::VipRoutes(std::unique_ptr<netlink::NetlinkSocket> socket,
                     int ifindex, std::string device_name)
    : socket_(std::move(socket)),
      ifindex_(ifindex),
      device_name_(std::move(device_name)) {}

VipRoutes::~VipRoutes() = default;

absl::Status VipRoutes::Add(const IpAddress& vip) {
  return Send(true, IpPrefix::Host(vip));
}

absl::Status VipRoutes::Remove(const IpAddress& vip) {
  return RemovePrefix(IpPrefix::Host(vip));
}

absl::Status VipRoutes::AddPrefix(const IpPrefix& prefix) {
  return Send(true, prefix);
}

absl::Status VipRoutes::RemovePrefix(const IpPrefix& prefix) {
  absl::Status status = Send(false, prefix);
  if (absl::IsNotFound(status)) return absl::OkStatus();  // Already gone.
  return status;
}

absl::Status VipRoutes::Send(bool add, const IpPrefix& prefix) {
  const IpAddress& vip = prefix.address();
  std::vector<uint8_t> buffer(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* header = mnl_nlmsg_put_header(buffer.data());
  header->nlmsg_type = add ? RTM_NEWROUTE : RTM_DELROUTE;
  header->nlmsg_flags = NLM_F_REQUEST;
  if (add) header->nlmsg_flags |= NLM_F_CREATE | NLM_F_REPLACE;
  auto* route =
      static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(header, sizeof(rtmsg)));
  route->rtm_family = vip.is_v4() ? AF_INET : AF_INET6;
  route->rtm_dst_len = static_cast<unsigned char>(prefix.length());
  route->rtm_table = RT_TABLE_MAIN;
  route->rtm_protocol = RTPROT_STATIC;
  route->rtm_scope = RT_SCOPE_LINK;
  route->rtm_type = RTN_UNICAST;
  mnl_attr_put(header, RTA_DST, vip.bytes().size(), vip.bytes().data());
  mnl_attr_put_u32(header, RTA_OIF, static_cast<uint32_t>(ifindex_));
  mnl_attr_put_u32(header, RTA_TABLE, RT_TABLE_MAIN);
  std::string what = absl::StrCat(add ? "adding" : "removing", " the route ",
                                  prefix.ToString(), " dev ", device_name_);
  return socket_->Request(std::span<uint8_t>(buffer.data(), header->nlmsg_len),
                          what);
}

}  // namespace anylb::routing::announce
