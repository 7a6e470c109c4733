#include "lbnode/dataplane/xsk/rx_queues.h"

#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "lbnode/dataplane/xsk/errno_status.h"

namespace anylb::dataplane::xsk {
namespace {

absl::StatusOr<uint32_t> QueuesFromSysfs(const std::string& interface) {
  std::error_code error;
  std::filesystem::directory_iterator it(
      "/sys/class/net/" + interface + "/queues", error);
  if (error) {
    return absl::UnavailableError(absl::StrCat(
        "counting the RX queues of \"", interface,
        "\": ETHTOOL_GCHANNELS is not supported and /sys/class/net/", interface,
        "/queues cannot be read (", error.message(),
        "); name the queues in the options"));
  }
  uint32_t count = 0;
  for (const auto& entry : it) {
    if (entry.path().filename().string().rfind("rx-", 0) == 0) ++count;
  }
  return count;
}

}  // namespace

absl::StatusOr<uint32_t> RxQueueCount(std::string_view interface_view) {
  std::string interface(interface_view);
  if (interface.empty() || interface.size() >= IFNAMSIZ ||
      if_nametoindex(interface.c_str()) == 0) {
    return absl::NotFoundError(absl::StrCat("no interface \"", interface,
                                            "\" in this network namespace"));
  }
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoStatus(errno, "socket for ETHTOOL_GCHANNELS");
  ethtool_channels channels = {};
  channels.cmd = ETHTOOL_GCHANNELS;
  ifreq request = {};
  std::memcpy(request.ifr_name, interface.c_str(), interface.size());
  request.ifr_data = reinterpret_cast<char*>(&channels);
  int result = ioctl(fd, SIOCETHTOOL, &request);
  int error = errno;
  close(fd);
  if (result == 0 && channels.rx_count + channels.combined_count > 0) {
    return channels.rx_count + channels.combined_count;
  }
  if (result != 0 && error != EOPNOTSUPP) {
    return ErrnoStatus(
        error, absl::StrCat("ETHTOOL_GCHANNELS on \"", interface, "\""));
  }
  ASSIGN_OR_RETURN(uint32_t count, QueuesFromSysfs(interface));
  if (count == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("\"", interface, "\" reports no RX queues"));
  }
  return count;
}

}  // namespace anylb::dataplane::xsk
