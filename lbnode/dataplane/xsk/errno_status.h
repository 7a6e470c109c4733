// ErrnoStatus: the one place where this package turns an errno (from
// libxdp, libbpf, sockets, ioctl) into an absl::Status. Nothing above the
// adapters in this folder sees a negative errno.

#ifndef ANYLB_LBNODE_DATAPLANE_XSK_ERRNO_STATUS_H_
#define ANYLB_LBNODE_DATAPLANE_XSK_ERRNO_STATUS_H_

#include <string_view>

#include "absl/status/status.h"

namespace anylb::dataplane::xsk {

// ErrnoStatus returns the status for `errnum` (positive, or a libxdp-style
// negative errno) with the most specific code, as
// "<what>: <strerror>", adding " (need root?)" to EPERM/EACCES.
absl::Status ErrnoStatus(int errnum, std::string_view what);

}  // namespace anylb::dataplane::xsk

#endif  // ANYLB_LBNODE_DATAPLANE_XSK_ERRNO_STATUS_H_
