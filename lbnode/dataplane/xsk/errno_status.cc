#include "lbnode/dataplane/xsk/errno_status.h"

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace anylb::dataplane::xsk {

absl::Status ErrnoStatus(int errnum, std::string_view what) {
  if (errnum < 0) errnum = -errnum;
  std::string message = absl::StrCat(
      absl::string_view(what.data(), what.size()), ": ", std::strerror(errnum));
  if (errnum == EPERM || errnum == EACCES) message += " (need root?)";
  return {absl::ErrnoToStatusCode(errnum), message};
}

}  // namespace anylb::dataplane::xsk
