#include "lbnode/dataplane/testing/pcap_writer.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace anylb::dataplane_testing {
namespace {

void PutLe16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}

void PutLe32(uint8_t* p, uint32_t v) {
  PutLe16(p, static_cast<uint16_t>(v));
  PutLe16(p + 2, static_cast<uint16_t>(v >> 16));
}

absl::Status ErrnoError(const std::string& what, const std::string& path) {
  int saved = errno;
  return absl::InternalError(
      absl::StrCat(what, " ", path, ": ", std::strerror(saved)));
}

}  // namespace

absl::StatusOr<PcapWriter> PcapWriter::Open(const std::string& path,
                                            uint32_t snaplen) {
  if (snaplen == 0) {
    return absl::InvalidArgumentError("pcap snaplen must be positive");
  }
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) return ErrnoError("cannot create", path);
  PcapWriter writer(file, path, snaplen);
  uint8_t header[24];
  PutLe32(header, kPcapMagicMicroseconds);
  PutLe16(header + 4, 2);  // Version 2.4.
  PutLe16(header + 6, 4);
  PutLe32(header + 8, 0);   // thiszone: UTC.
  PutLe32(header + 12, 0);  // sigfigs.
  PutLe32(header + 16, snaplen);
  PutLe32(header + 20, kLinkTypeEthernet);
  if (std::fwrite(header, sizeof(header), 1, file) != 1) {
    return ErrnoError("cannot write", path);
  }
  return writer;
}

PcapWriter::PcapWriter(PcapWriter&& other) noexcept
    : file_(std::exchange(other.file_, nullptr)),
      path_(std::move(other.path_)),
      snaplen_(other.snaplen_) {}

PcapWriter& PcapWriter::operator=(PcapWriter&& other) noexcept {
  if (this != &other) {
    if (file_ != nullptr) std::fclose(file_);
    file_ = std::exchange(other.file_, nullptr);
    path_ = std::move(other.path_);
    snaplen_ = other.snaplen_;
  }
  return *this;
}

PcapWriter::~PcapWriter() {
  if (file_ != nullptr) std::fclose(file_);
}

absl::Status PcapWriter::Write(std::span<const uint8_t> frame,
                               absl::Time timestamp) {
  if (file_ == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("pcap file ", path_, " is closed"));
  }
  int64_t micros = absl::ToUnixMicros(timestamp);
  if (micros < 0 || micros / 1000000 > 0xffffffff) {
    return absl::InvalidArgumentError(
        absl::StrCat("pcap timestamp ", absl::FormatTime(timestamp),
                     " does not fit 32-bit unsigned seconds"));
  }
  if (frame.size() > 0xffffffff) {
    return absl::InvalidArgumentError("frame too long for pcap");
  }
  const uint32_t captured =
      static_cast<uint32_t>(std::min<size_t>(frame.size(), snaplen_));
  uint8_t record[16];
  PutLe32(record, static_cast<uint32_t>(micros / 1000000));
  PutLe32(record + 4, static_cast<uint32_t>(micros % 1000000));
  PutLe32(record + 8, captured);
  PutLe32(record + 12, static_cast<uint32_t>(frame.size()));
  if (std::fwrite(record, sizeof(record), 1, file_) != 1 ||
      (captured > 0 && std::fwrite(frame.data(), captured, 1, file_) != 1)) {
    return ErrnoError("cannot write", path_);
  }
  return absl::OkStatus();
}

absl::Status PcapWriter::Close() {
  if (file_ == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("pcap file ", path_, " is already closed"));
  }
  std::FILE* file = std::exchange(file_, nullptr);
  if (std::fclose(file) != 0) return ErrnoError("cannot close", path_);
  return absl::OkStatus();
}

absl::Status WritePcapFile(const std::string& path,
                           std::span<const std::vector<uint8_t>> frames) {
  ASSIGN_OR_RETURN(PcapWriter writer, PcapWriter::Open(path));
  const absl::Time start = absl::FromUnixSeconds(946684800);  // 2000-01-01.
  for (size_t i = 0; i < frames.size(); ++i) {
    RETURN_IF_ERROR(writer.Write(
        frames[i], start + absl::Milliseconds(static_cast<int64_t>(i))));
  }
  return writer.Close();
}

}  // namespace anylb::dataplane_testing
