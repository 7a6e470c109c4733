#include "lbnode/agent/snapshot_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace anylb::agent {
namespace {

constexpr char kMagic[8] = {'A', 'N', 'Y', 'L', 'B', 'S', 'C', '1'};
constexpr size_t kHeaderSize = 24;
// Far above any real config; a larger length field means corruption.
constexpr uint64_t kMaxPayload = uint64_t{1} << 30;

uint64_t Fnv1a64(const std::string& bytes) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (unsigned char c : bytes) {
    hash ^= c;
    hash *= 0x100000001b3ull;
  }
  return hash;
}

void PutLe64(uint64_t value, char* out) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(value >> (8 * i));
}

uint64_t GetLe64(const char* in) {
  uint64_t value = 0;
  for (int i = 0; i < 8; ++i) {
    value |= uint64_t{static_cast<unsigned char>(in[i])} << (8 * i);
  }
  return value;
}

absl::Status ErrnoError(int err, const std::string& what) {
  return absl::ErrnoToStatus(err, what);
}

std::string DirOf(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// WriteAll writes `bytes` to `fd`, retrying short writes and EINTR.
int WriteAll(int fd, const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    done += static_cast<size_t>(n);
  }
  return 0;
}

}  // namespace

absl::Status SnapshotCache::Write(
    const lb::v1::ConfigSnapshot& snapshot) const {
  std::string payload;
  if (!snapshot.SerializeToString(&payload)) {
    return absl::InternalError(absl::StrCat("snapshot cache \"", path_,
                                            "\": cannot serialize revision ",
                                            snapshot.revision()));
  }
  std::string bytes(kHeaderSize, '\0');
  std::memcpy(bytes.data(), kMagic, sizeof(kMagic));
  PutLe64(payload.size(), bytes.data() + 8);
  PutLe64(Fnv1a64(payload), bytes.data() + 16);
  bytes += payload;

  const std::string tmp = absl::StrCat(path_, ".tmp.", getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return ErrnoError(errno, absl::StrCat("snapshot cache: creating \"", tmp,
                                          "\" (does the directory exist and "
                                          "is it writable?)"));
  }
  int err = WriteAll(fd, bytes);
  const char* step = "writing";
  if (err == 0 && ::fsync(fd) != 0) {
    err = errno;
    step = "fsync of";
  }
  if (::close(fd) != 0 && err == 0) {
    err = errno;
    step = "closing";
  }
  if (err != 0) {
    ::unlink(tmp.c_str());
    return ErrnoError(err,
                      absl::StrCat("snapshot cache: ", step, " \"", tmp, "\""));
  }
  if (::rename(tmp.c_str(), path_.c_str()) != 0) {
    err = errno;
    ::unlink(tmp.c_str());
    return ErrnoError(err, absl::StrCat("snapshot cache: renaming \"", tmp,
                                        "\" to \"", path_, "\""));
  }
  const std::string dir = DirOf(path_);
  int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) {
    return ErrnoError(errno,
                      absl::StrCat("snapshot cache: opening directory \"", dir,
                                   "\" to fsync it"));
  }
  err = ::fsync(dir_fd) != 0 ? errno : 0;
  ::close(dir_fd);
  if (err != 0) {
    return ErrnoError(
        err, absl::StrCat("snapshot cache: fsync of directory \"", dir, "\""));
  }
  return absl::OkStatus();
}

absl::StatusOr<lb::v1::ConfigSnapshot> SnapshotCache::Read() const {
  int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) {
      return absl::NotFoundError(
          absl::StrCat("snapshot cache \"", path_, "\" does not exist yet"));
    }
    return ErrnoError(err,
                      absl::StrCat("snapshot cache: opening \"", path_, "\""));
  }
  std::string bytes;
  char buffer[65536];
  while (true) {
    ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return ErrnoError(
          err, absl::StrCat("snapshot cache: reading \"", path_, "\""));
    }
    if (n == 0) break;
    bytes.append(buffer, static_cast<size_t>(n));
    if (bytes.size() > kHeaderSize + kMaxPayload) break;
  }
  ::close(fd);
  auto corrupt = [&](absl::string_view why) {
    return absl::DataLossError(absl::StrCat(
        "snapshot cache \"", path_, "\" is corrupt (", why,
        "); ignoring it: the controller's next snapshot replaces it"));
  };
  if (bytes.size() < kHeaderSize ||
      std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) {
    return corrupt("not an anylb snapshot cache: bad magic or too short");
  }
  const uint64_t length = GetLe64(bytes.data() + 8);
  if (length != bytes.size() - kHeaderSize) {
    return corrupt(absl::StrCat("length field ", length, " but ",
                                bytes.size() - kHeaderSize, " payload bytes"));
  }
  std::string payload = bytes.substr(kHeaderSize);
  if (Fnv1a64(payload) != GetLe64(bytes.data() + 16)) {
    return corrupt("checksum mismatch");
  }
  lb::v1::ConfigSnapshot snapshot;
  if (!snapshot.ParseFromString(payload)) {
    return corrupt("payload is not a lb.v1.ConfigSnapshot");
  }
  return snapshot;
}

}  // namespace anylb::agent
