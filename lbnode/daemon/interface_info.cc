#include "lbnode/daemon/interface_info.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace anylb::lbnode {
namespace {

absl::Status IoctlError(std::string_view what, std::string_view name,
                        int error) {
  return absl::ErrnoToStatus(error,
                             absl::StrCat(std::string(what), " of interface \"",
                                          std::string(name), "\""));
}

// FdCloser closes a descriptor at scope exit.
struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) close(fd);
  }
};

bool IsGlobalV6(const in6_addr& a) {
  if (IN6_IS_ADDR_LINKLOCAL(&a) || IN6_IS_ADDR_LOOPBACK(&a) ||
      IN6_IS_ADDR_MULTICAST(&a) || IN6_IS_ADDR_UNSPECIFIED(&a)) {
    return false;
  }
  return true;
}

}  // namespace

std::optional<IpAddress> InterfaceInfo::FirstAddress(IpFamily family) const {
  const std::vector<IpAddress>& list = family == IpFamily::kV4 ? ipv4 : ipv6;
  if (list.empty()) return std::nullopt;
  return list.front();
}

std::string FormatMac(const std::array<uint8_t, 6>& mac) {
  return absl::StrFormat("%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1],
                         mac[2], mac[3], mac[4], mac[5]);
}

absl::StatusOr<InterfaceInfo> ReadInterfaceInfo(std::string_view name) {
  if (name.empty() || name.size() >= IFNAMSIZ) {
    return absl::InvalidArgumentError(
        absl::StrCat("interface name \"", std::string(name), "\" must be 1 to ",
                     IFNAMSIZ - 1, " characters"));
  }
  InterfaceInfo info;
  info.name = std::string(name);
  info.ifindex = static_cast<int>(if_nametoindex(info.name.c_str()));
  if (info.ifindex == 0) {
    return absl::NotFoundError(
        absl::StrCat("interface \"", info.name,
                     "\" not found in this network namespace; `ip link` "
                     "lists the interfaces"));
  }

  FdCloser sock{socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
  if (sock.fd < 0) return absl::ErrnoToStatus(errno, "socket(AF_INET)");
  ifreq req{};
  std::memcpy(req.ifr_name, info.name.data(), info.name.size());
  if (ioctl(sock.fd, SIOCGIFHWADDR, &req) != 0) {
    return IoctlError("reading the MAC", name, errno);
  }
  if (req.ifr_hwaddr.sa_family != ARPHRD_ETHER) {
    return absl::FailedPreconditionError(absl::StrCat(
        "interface \"", info.name, "\" is not Ethernet (ARPHRD ",
        req.ifr_hwaddr.sa_family, "); lbnode needs an Ethernet interface"));
  }
  std::memcpy(info.mac.data(), req.ifr_hwaddr.sa_data, 6);
  if (ioctl(sock.fd, SIOCGIFMTU, &req) != 0) {
    return IoctlError("reading the MTU", name, errno);
  }
  info.mtu = static_cast<uint32_t>(req.ifr_mtu);

  // RX queues: /sys/class/net/<if>/queues/rx-N (absent on some virtual
  // devices: then one).
  std::error_code ec;
  std::filesystem::path queues =
      std::filesystem::path("/sys/class/net") / info.name / "queues";
  uint32_t rx = 0;
  for (const auto& entry : std::filesystem::directory_iterator(queues, ec)) {
    if (entry.path().filename().string().rfind("rx-", 0) == 0) ++rx;
  }
  info.rx_queues = rx == 0 ? 1 : rx;

  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return absl::ErrnoToStatus(errno, "getifaddrs");
  for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr || a->ifa_name == nullptr ||
        info.name != a->ifa_name) {
      continue;
    }
    if (a->ifa_addr->sa_family == AF_INET) {
      const auto* sin = reinterpret_cast<const sockaddr_in*>(a->ifa_addr);
      info.ipv4.push_back(IpAddress::FromV4Bytes(std::span<const uint8_t, 4>(
          reinterpret_cast<const uint8_t*>(&sin->sin_addr), 4)));
    } else if (a->ifa_addr->sa_family == AF_INET6) {
      const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(a->ifa_addr);
      if (!IsGlobalV6(sin6->sin6_addr)) continue;
      info.ipv6.push_back(IpAddress::FromV6Bytes(std::span<const uint8_t, 16>(
          reinterpret_cast<const uint8_t*>(&sin6->sin6_addr), 16)));
    }
  }
  freeifaddrs(list);
  return info;
}

}  // namespace anylb::lbnode
