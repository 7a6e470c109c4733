#include "tests/netns/topology.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "tests/netns/links.h"

namespace anylb::lab {
namespace {

// Address parses one of the plan's constant addresses.
IpAddress Address(const std::string& text) {
  return IpAddress::Parse(text).value();
}

IpPrefix Prefix(const std::string& text) {
  return IpPrefix::Parse(text).value();
}

bool V4(IpFamily family) { return family == IpFamily::kV4; }

}  // namespace

IpAddress Topology::ClientAddress(IpFamily family) {
  return Address(V4(family) ? "203.0.113.2" : "2001:db8:c::2");
}

IpAddress Topology::DirectorClientSideAddress(IpFamily family) {
  return Address(V4(family) ? "203.0.113.1" : "2001:db8:c::1");
}

IpAddress Topology::DirectorAddress(IpFamily family) {
  return Address(V4(family) ? "198.51.100.1" : "2001:db8:b::1");
}

IpAddress Topology::RealServerAddress(int i, IpFamily family) {
  return Address(V4(family) ? absl::StrCat("198.51.100.1", i + 1)
                            : absl::StrCat("2001:db8:b::1", i + 1));
}

IpAddress Topology::Vip(int k, IpFamily family) {
  return Address(V4(family) ? absl::StrCat("192.0.2.", 1 + k)
                            : absl::StrFormat("2001:db8:f::%x", 1 + k));
}

IpAddress Topology::LocalAddress(int k, IpFamily family) {
  return Address(V4(family) ? absl::StrCat("192.0.2.", 129 + k)
                            : absl::StrFormat("2001:db8:e::%x", 1 + k));
}

IpPrefix Topology::VipPrefix(IpFamily family) {
  return Prefix(V4(family) ? "192.0.2.0/25" : "2001:db8:f::/64");
}

IpPrefix Topology::LocalPrefix(IpFamily family) {
  return Prefix(V4(family) ? "192.0.2.128/25" : "2001:db8:e::/64");
}

IpPrefix Topology::ClientPrefix(IpFamily family) {
  return Prefix(V4(family) ? "203.0.113.0/24" : "2001:db8:c::/64");
}

std::string Topology::ClientMac() { return "02:a1:00:00:00:02"; }
std::string Topology::DirectorMac() { return "02:a1:00:00:00:01"; }
std::string Topology::RealServerMac(int i) {
  return absl::StrFormat("02:a1:00:00:01:%02x", i + 1);
}

absl::StatusOr<std::unique_ptr<Topology>> Topology::Create(
    const TopologyOptions& options) {
  if (options.real_servers < 1 || options.real_servers > 9) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Topology: real_servers must be 1..9, not ", options.real_servers));
  }
  // Owned from the start: a failure half-way removes what was made.
  std::unique_ptr<Topology> topology(new Topology());
  RETURN_IF_ERROR(topology->Build(options));
  return topology;
}

Topology::~Topology() {
  // Real servers and the client first, the switch last (the order does not
  // matter to the kernel; it keeps `ip netns` tidy while we go).
  real_servers_.clear();
  client_.reset();
  director_.reset();
  switch_.reset();
}

absl::Status Topology::Build(const TopologyOptions& options) {
  ASSIGN_OR_RETURN(switch_, Netns::Create("switch"));
  ASSIGN_OR_RETURN(client_, Netns::Create("client"));
  ASSIGN_OR_RETURN(director_, Netns::Create("director"));
  for (int i = 0; i < options.real_servers; ++i) {
    ASSIGN_OR_RETURN(auto rs, Netns::Create(absl::StrCat("rs", i + 1)));
    real_servers_.push_back(std::move(rs));
  }
  // The switch forwards frames only; no IPv6 on its ports.
  RETURN_IF_ERROR(switch_->Sysctl("net.ipv6.conf.all.disable_ipv6", "1"));
  RETURN_IF_ERROR(switch_->Sysctl("net.ipv6.conf.default.disable_ipv6", "1"));
  RETURN_IF_ERROR(AddBridge(*switch_, kBridge));

  auto connect = [&](const Netns& host, const std::string& port,
                     const std::string& mac) -> absl::Status {
    RETURN_IF_ERROR(QuietHost(host));
    RETURN_IF_ERROR(DisableRpFilter(host));
    RETURN_IF_ERROR(AddVethPair(host, kInterface, *switch_, port));
    RETURN_IF_ERROR(SetMac(host, kInterface, mac));
    if (options.mtu != 1500) {
      RETURN_IF_ERROR(SetMtu(host, kInterface, options.mtu));
      RETURN_IF_ERROR(SetMtu(*switch_, port, options.mtu));
    }
    return AddBridgePort(*switch_, kBridge, port);
  };

  RETURN_IF_ERROR(connect(*client_, "p-client", ClientMac()));
  RETURN_IF_ERROR(connect(*director_, kDirectorPeer, DirectorMac()));
  for (int i = 0; i < options.real_servers; ++i) {
    RETURN_IF_ERROR(connect(*real_servers_[i], absl::StrCat("p-rs", i + 1),
                            RealServerMac(i)));
  }

  for (IpFamily family : {IpFamily::kV4, IpFamily::kV6}) {
    int client_len = V4(family) ? 24 : 64;
    int server_len = V4(family) ? 24 : 64;
    // Client.
    RETURN_IF_ERROR(AddAddress(
        *client_, kInterface,
        absl::StrCat(ClientAddress(family).ToString(), "/", client_len)));
    std::string director_client_side =
        DirectorClientSideAddress(family).ToString();
    RETURN_IF_ERROR(ReplaceRoute(*client_, VipPrefix(family).ToString(),
                                 director_client_side, kInterface));
    RETURN_IF_ERROR(ReplaceRoute(
        *client_, V4(family) ? "198.51.100.0/24" : "2001:db8:b::/64",
        director_client_side, kInterface));
    // Director.
    RETURN_IF_ERROR(
        AddAddress(*director_, kInterface,
                   absl::StrCat(director_client_side, "/", client_len)));
    RETURN_IF_ERROR(AddAddress(
        *director_, kInterface,
        absl::StrCat(DirectorAddress(family).ToString(), "/", server_len)));
    // Real servers.
    for (int i = 0; i < options.real_servers; ++i) {
      RETURN_IF_ERROR(
          AddAddress(*real_servers_[i], kInterface,
                     absl::StrCat(RealServerAddress(i, family).ToString(), "/",
                                  server_len)));
      std::string director = DirectorAddress(family).ToString();
      RETURN_IF_ERROR(ReplaceRoute(*real_servers_[i],
                                   V4(family) ? "default" : "::/0", director,
                                   kInterface));
      RETURN_IF_ERROR(ReplaceRoute(*real_servers_[i],
                                   LocalPrefix(family).ToString(), director,
                                   kInterface));
    }
  }
  RETURN_IF_ERROR(EnableForwarding(*director_));
  for (const auto& rs : real_servers_) RETURN_IF_ERROR(SetDrArpSysctls(*rs));
  RETURN_IF_ERROR(SetReturnPath(ReturnPath::kDirect));

  ASSIGN_OR_RETURN(director_peer_mac_, GetMac(*switch_, kDirectorPeer));
  ASSIGN_OR_RETURN(director_ifindex_, GetIfindex(*director_, kInterface));
  if (options.xdp_pass_on_director_peer) {
    RETURN_IF_ERROR(AttachXdpPass(*switch_, kDirectorPeer));
  }
  return absl::OkStatus();
}

absl::Status Topology::AddVipToRealServers(const IpAddress& vip) const {
  for (const auto& rs : real_servers_) {
    RETURN_IF_ERROR(AddLoopbackAddress(*rs, vip.ToString()));
  }
  return absl::OkStatus();
}

absl::Status Topology::SetReturnPath(ReturnPath path) const {
  for (const auto& rs : real_servers_) {
    for (IpFamily family : {IpFamily::kV4, IpFamily::kV6}) {
      RETURN_IF_ERROR(ReplaceRoute(
          *rs, ClientPrefix(family).ToString(),
          path == ReturnPath::kDirect ? "" : DirectorAddress(family).ToString(),
          kInterface));
    }
  }
  return absl::OkStatus();
}

std::string Topology::Describe() const {
  std::string text;
  std::vector<const Netns*> all = {client_.get(), director_.get()};
  for (const auto& rs : real_servers_) all.push_back(rs.get());
  for (const Netns* ns : all) {
    if (ns == nullptr) continue;
    absl::StatusOr<std::string> out =
        ns->Run("ip -br addr; ip route; ip -6 route; ip neigh");
    absl::StrAppend(&text, "== ", ns->name(), "\n",
                    out.ok() ? *out : out.status().ToString(), "\n");
  }
  return text;
}

}  // namespace anylb::lab
