// TunDevice: a non-persistent TUN interface that holds lbnode's VIP routes.
//
// The device lives exactly as long as its file descriptor: when the
// process exits, however it exits (kill -9 included), the kernel closes the
// descriptor, deletes the device and with it every route through it;
// zebra sees the routes go and bgpd/ospfd withdraw them. No stale
// announcement survives the process. The descriptor is O_CLOEXEC, so
// child processes (vtysh) never keep the device alive.
//
// Nothing reads the device: no traffic is meant to go through it (VIP
// traffic is taken by XDP before routing). Locally sent packets to a VIP
// fill its queue and are dropped.
//
// Threading: create and destroy on one thread; the accessors are const.

#ifndef ANYLB_ROUTING_ANNOUNCE_TUN_DEVICE_H_
#define ANYLB_ROUTING_ANNOUNCE_TUN_DEVICE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace anylb::routing::announce {

// TunDevice: see the file comment.
class TunDevice {
 public:
  // Create makes the TUN device `name` (IFF_TUN, no packet information),
  // clears its persist flag and brings it up, in the calling thread's
  // network namespace. Errors name the device: ALREADY_EXISTS when another
  // process holds it (another lbnode?) or a device of another kind has the
  // name; PERMISSION_DENIED without CAP_NET_ADMIN.
  static absl::StatusOr<std::unique_ptr<TunDevice>> Create(
      const std::string& name);

  TunDevice(const TunDevice&) = delete;
  TunDevice& operator=(const TunDevice&) = delete;
  // ~TunDevice closes the descriptor: the kernel deletes the device and
  // its routes.
  ~TunDevice();

  const std::string& name() const { return name_; }
  int ifindex() const { return ifindex_; }

 private:
  TunDevice(int fd, std::string name, int ifindex)
      : fd_(fd), name_(std::move(name)), ifindex_(ifindex) {}

  int fd_;
  std::string name_;
  int ifindex_;
};

}  // namespace anylb::routing::announce

#endif  // ANYLB_ROUTING_ANNOUNCE_TUN_DEVICE_H_
