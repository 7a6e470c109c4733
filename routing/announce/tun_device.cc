#include "routing/announce/tun_device.h"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace anylb::routing::announce {
namespace {

absl::Status DeviceError(int error, const std::string& name, const char* what) {
  std::string message =
      absl::StrCat("TUN device \"", name, "\": ", what, ": ", strerror(error));
  switch (error) {
    case EPERM:
    case EACCES:
      return absl::PermissionDeniedError(
          absl::StrCat(message, " (need root or CAP_NET_ADMIN)"));
    case EBUSY:
      return absl::AlreadyExistsError(absl::StrCat(
          message,
          " (another process holds it: is another lbnode running? Pick "
          "another --announce_device)"));
    case EINVAL:
      return absl::AlreadyExistsError(absl::StrCat(
          message,
          " (a device of another kind has this name? `ip -d link show ", name,
          "`; pick another --announce_device)"));
    case ENOENT:
    case ENODEV:
      return absl::FailedPreconditionError(
          absl::StrCat(message, " (no /dev/net/tun: load the tun module)"));
    default:
      return absl::InternalError(message);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<TunDevice>> TunDevice::Create(
    const std::string& name) {
  if (name.empty() || name.size() >= IFNAMSIZ) {
    return absl::InvalidArgumentError(
        absl::StrCat("TUN device name \"", name, "\": must be 1..",
                     IFNAMSIZ - 1, " characters"));
  }
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return DeviceError(errno, name, "opening /dev/net/tun");
  ifreq request;
  memset(&request, 0, sizeof(request));
  memcpy(request.ifr_name, name.data(), name.size());
  request.ifr_flags = IFF_TUN | IFF_NO_PI;
  if (ioctl(fd, TUNSETIFF, &request) != 0) {
    int e = errno;
    close(fd);
    return DeviceError(e, name, "creating (TUNSETIFF)");
  }
  // A persistent device left by someone else would survive us: make it ours.
  if (ioctl(fd, TUNSETPERSIST, 0) != 0) {
    int e = errno;
    close(fd);
    return DeviceError(e, name, "clearing the persist flag");
  }
  int ifindex = static_cast<int>(if_nametoindex(name.c_str()));
  int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0 || ifindex == 0) {
    int e = errno;
    if (sock >= 0) close(sock);
    close(fd);
    return DeviceError(e, name, "looking it up");
  }
  ifreq flags;
  memset(&flags, 0, sizeof(flags));
  memcpy(flags.ifr_name, name.data(), name.size());
  int result = ioctl(sock, SIOCGIFFLAGS, &flags);
  if (result == 0) {
    flags.ifr_flags |= IFF_UP;
    result = ioctl(sock, SIOCSIFFLAGS, &flags);
  }
  int e = errno;
  close(sock);
  if (result != 0) {
    close(fd);
    return DeviceError(e, name, "bringing it up");
  }
  return std::unique_ptr<TunDevice>(new TunDevice(fd, name, ifindex));
}

TunDevice::~TunDevice() { close(fd_); }

}  // namespace anylb::routing::announce
