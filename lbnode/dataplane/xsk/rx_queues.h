// RxQueueCount: how many RX queues an interface has, so the dataplane can
// start one worker per queue by default.

#ifndef ANYLB_LBNODE_DATAPLANE_XSK_RX_QUEUES_H_
#define ANYLB_LBNODE_DATAPLANE_XSK_RX_QUEUES_H_

#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"

namespace anylb::dataplane::xsk {

// RxQueueCount returns how many RX queues `interface` has (in the calling
// thread's network namespace): ETHTOOL_GCHANNELS (rx + combined), else the
// rx-* entries of /sys/class/net/<interface>/queues. NotFound if there is
// no such interface.
absl::StatusOr<uint32_t> RxQueueCount(std::string_view interface);

}  // namespace anylb::dataplane::xsk

#endif  // ANYLB_LBNODE_DATAPLANE_XSK_RX_QUEUES_H_
