#include "routing/fpm/fpm_sender.h"

#include <linux/netlink.h>
#include <linux/nexthop.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "fpm/fpm.pb.h"

namespace anylb::routing::fpm {
namespace {

// Builder appends netlink attributes to a message.
class Builder {
 public:
  Builder(uint16_t type, uint16_t flags) {
    nlmsghdr header{};
    header.nlmsg_type = type;
    header.nlmsg_flags = flags;
    Append(&header, sizeof(header));
  }
  void Append(const void* data, size_t size) {
    const auto* p = static_cast<const uint8_t*>(data);
    bytes_.insert(bytes_.end(), p, p + size);
    bytes_.resize(NLMSG_ALIGN(bytes_.size()));
  }
  void Attribute(uint16_t type, const void* data, size_t size) {
    rtattr attribute{};
    attribute.rta_len = static_cast<uint16_t>(RTA_LENGTH(size));
    attribute.rta_type = type;
    const size_t start = bytes_.size();
    bytes_.resize(start + RTA_SPACE(size));
    std::memcpy(bytes_.data() + start, &attribute, sizeof(attribute));
    std::memcpy(bytes_.data() + start + sizeof(attribute), data, size);
  }
  void U32(uint16_t type, uint32_t value) {
    Attribute(type, &value, sizeof(value));
  }
  void Address(uint16_t type, const IpAddress& address) {
    Attribute(type, address.bytes().data(), address.bytes().size());
  }
  std::vector<uint8_t> Finish() {
    const uint32_t length = static_cast<uint32_t>(bytes_.size());
    std::memcpy(bytes_.data(), &length, sizeof(length));
    return std::move(bytes_);
  }
  std::vector<uint8_t>& bytes() { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

void SetPrefix(const IpPrefix& prefix, anylb::fpm::RouteKey* key) {
  const auto bytes = prefix.address().bytes();
  key->mutable_prefix()->set_length(static_cast<uint32_t>(prefix.length()));
  key->mutable_prefix()->set_bytes(std::string(
      reinterpret_cast<const char*>(bytes.data()), (prefix.length() + 7) / 8));
}

}  // namespace

std::vector<uint8_t> EncodeNetlinkRoute(const NetlinkRouteSpec& spec) {
  Builder b(spec.deleted ? RTM_DELROUTE : RTM_NEWROUTE,
            NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE);
  rtmsg header{};
  header.rtm_family = static_cast<uint8_t>(spec.prefix.address().af());
  header.rtm_dst_len = static_cast<uint8_t>(spec.prefix.length());
  header.rtm_table = spec.table < 256 ? static_cast<uint8_t>(spec.table)
                                      : uint8_t{RT_TABLE_UNSPEC};
  header.rtm_protocol = RTPROT_STATIC;
  header.rtm_type = spec.type;
  b.Append(&header, sizeof(header));
  b.Address(RTA_DST, spec.prefix.address());
  b.U32(RTA_PRIORITY, spec.priority);
  b.U32(RTA_TABLE, spec.table);
  if (spec.nh_id != 0) {
    b.U32(RTA_NH_ID, spec.nh_id);
  } else if (spec.next_hops.size() == 1) {
    const netlink::RouteNextHop& hop = spec.next_hops[0];
    if (hop.has_gateway) b.Address(RTA_GATEWAY, hop.gateway);
    b.U32(RTA_OIF, static_cast<uint32_t>(hop.ifindex));
  } else if (spec.next_hops.size() > 1) {
    std::vector<uint8_t> multipath;
    for (const netlink::RouteNextHop& hop : spec.next_hops) {
      rtnexthop nh{};
      nh.rtnh_ifindex = hop.ifindex;
      nh.rtnh_hops = static_cast<uint8_t>(hop.weight - 1);
      nh.rtnh_len = sizeof(nh);
      std::vector<uint8_t> gateway;
      if (hop.has_gateway) {
        const auto bytes = hop.gateway.bytes();
        rtattr a{};
        a.rta_len = static_cast<uint16_t>(RTA_LENGTH(bytes.size()));
        a.rta_type = RTA_GATEWAY;
        gateway.resize(RTA_SPACE(bytes.size()));
        std::memcpy(gateway.data(), &a, sizeof(a));
        std::memcpy(gateway.data() + sizeof(a), bytes.data(), bytes.size());
        nh.rtnh_len = static_cast<unsigned short>(sizeof(nh) + gateway.size());
      }
      const auto* p = reinterpret_cast<const uint8_t*>(&nh);
      multipath.insert(multipath.end(), p, p + sizeof(nh));
      multipath.insert(multipath.end(), gateway.begin(), gateway.end());
    }
    b.Attribute(RTA_MULTIPATH, multipath.data(), multipath.size());
  }
  return b.Finish();
}

std::vector<uint8_t> EncodeNetlinkNextHop(const NextHopObject& object,
                                          bool deleted) {
  Builder b(deleted ? RTM_DELNEXTHOP : RTM_NEWNEXTHOP,
            NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE);
  nhmsg header{};
  header.nh_family = object.group.empty() && object.has_gateway
                         ? static_cast<uint8_t>(object.gateway.af())
                         : AF_UNSPEC;
  header.nh_protocol = 11;  // RTPROT_ZEBRA.
  b.Append(&header, sizeof(header));
  b.U32(NHA_ID, object.id);
  if (!object.group.empty()) {
    std::vector<nexthop_grp> group;
    for (const NextHopGroupMember& member : object.group) {
      nexthop_grp g{};
      g.id = member.id;
      g.weight = static_cast<uint8_t>(member.weight - 1);
      group.push_back(g);
    }
    b.Attribute(NHA_GROUP, group.data(), group.size() * sizeof(nexthop_grp));
  } else if (object.blackhole) {
    b.Attribute(NHA_BLACKHOLE, nullptr, 0);
  } else {
    b.U32(NHA_OIF, static_cast<uint32_t>(object.ifindex));
    if (object.has_gateway) b.Address(NHA_GATEWAY, object.gateway);
  }
  return b.Finish();
}

std::string EncodeProtobufAddRoute(
    const IpPrefix& prefix, const std::vector<netlink::RouteNextHop>& hops,
    netlink::RouteKind kind, int32_t metric) {
  anylb::fpm::Message message;
  message.set_type(anylb::fpm::Message::ADD_ROUTE);
  anylb::fpm::AddRoute* add = message.mutable_add_route();
  add->set_vrf_id(0);
  add->set_address_family(prefix.is_v4() ? anylb::fpm::IPV4 : anylb::fpm::IPV6);
  add->set_sub_address_family(anylb::fpm::UNICAST);
  SetPrefix(prefix, add->mutable_key());
  add->set_route_type(kind == netlink::RouteKind::kUnicast
                          ? anylb::fpm::NORMAL
                          : anylb::fpm::BLACKHOLE);
  add->set_protocol(anylb::fpm::STATIC);
  add->set_metric(metric);
  for (const netlink::RouteNextHop& hop : hops) {
    anylb::fpm::Nexthop* next = add->add_nexthops();
    next->mutable_if_id()->set_index(static_cast<uint32_t>(hop.ifindex));
    if (!hop.has_gateway) continue;
    if (hop.gateway.is_v4()) {
      next->mutable_address()->mutable_v4()->set_value(
          hop.gateway.v4_host_order());
    } else {
      const auto bytes = hop.gateway.bytes();
      next->mutable_address()->mutable_v6()->set_bytes(
          std::string(reinterpret_cast<const char*>(bytes.data()), 16));
    }
  }
  return message.SerializeAsString();
}

std::string EncodeProtobufDeleteRoute(const IpPrefix& prefix) {
  anylb::fpm::Message message;
  message.set_type(anylb::fpm::Message::DELETE_ROUTE);
  anylb::fpm::DeleteRoute* del = message.mutable_delete_route();
  del->set_vrf_id(0);
  del->set_address_family(prefix.is_v4() ? anylb::fpm::IPV4 : anylb::fpm::IPV6);
  del->set_sub_address_family(anylb::fpm::UNICAST);
  SetPrefix(prefix, del->mutable_key());
  return message.SerializeAsString();
}

absl::StatusOr<std::unique_ptr<FpmSender>> FpmSender::Connect(
    const Endpoint& server) {
  const int fd = socket(server.address().af(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::ErrnoToStatus(errno, "FPM sender: socket");
  sockaddr_storage address{};
  socklen_t length;
  if (server.is_v4()) {
    auto* a = reinterpret_cast<sockaddr_in*>(&address);
    a->sin_family = AF_INET;
    a->sin_port = htons(server.port());
    a->sin_addr.s_addr = server.address().v4_network_order();
    length = sizeof(*a);
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(&address);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(server.port());
    std::memcpy(&a->sin6_addr, server.address().bytes().data(), 16);
    length = sizeof(*a);
  }
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), length) != 0) {
    const int error = errno;
    close(fd);
    return absl::ErrnoToStatus(
        error, absl::StrCat("FPM sender: connecting to ", server.ToString()));
  }
  return std::unique_ptr<FpmSender>(new FpmSender(fd));
}

FpmSender::~FpmSender() { close(fd_); }

absl::Status FpmSender::SendRaw(std::span<const uint8_t> bytes) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n =
        send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(errno, "FPM sender: send");
    }
    sent += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status FpmSender::SendFrame(FrameType type,
                                  std::span<const uint8_t> payload) {
  return SendRaw(EncodeFrame(type, payload));
}

bool FpmSender::WaitForClose(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    pollfd fd{fd_, POLLIN, 0};
    const int left = static_cast<int>(std::max<int64_t>(
        0, absl::ToInt64Milliseconds(deadline - absl::Now())));
    if (poll(&fd, 1, left) <= 0) return false;
    uint8_t byte;
    const ssize_t n = recv(fd_, &byte, 1, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return true;
    if (absl::Now() >= deadline) return false;
  }
}

}  // namespace anylb::routing::fpm
