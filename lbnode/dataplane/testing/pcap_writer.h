// PcapWriter: writes Ethernet frames to a classic libpcap file, so packet
// fixtures and engine output can be opened in tcpdump or Wireshark.
//
//   ASSIGN_OR_RETURN(PcapWriter pcap, PcapWriter::Open("/tmp/fixtures.pcap"));
//   RETURN_IF_ERROR(pcap.Write(frame, absl::FromUnixSeconds(946684800)));
//   RETURN_IF_ERROR(pcap.Close());
//
// Format (https://wiki.wireshark.org/Development/LibpcapFileFormat, and
// draft-ietf-opsawg-pcap): a 24-byte global header (magic 0xa1b2c3d4 =
// microsecond timestamps, version 2.4, LINKTYPE_ETHERNET = 1) and per frame
// a 16-byte record header (seconds, microseconds, captured length, original
// length) followed by the captured bytes. Fields are written little-endian,
// as libpcap writes them on x86; readers detect the byte order by the magic.

#ifndef ANYLB_LBNODE_DATAPLANE_TESTING_PCAP_WRITER_H_
#define ANYLB_LBNODE_DATAPLANE_TESTING_PCAP_WRITER_H_

#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace anylb::dataplane_testing {

inline constexpr uint32_t kPcapMagicMicroseconds = 0xa1b2c3d4;
inline constexpr uint32_t kLinkTypeEthernet = 1;

// PcapWriter owns one open pcap file. Move-only; the destructor closes the
// file if Close() was not called (dropping any error: call Close()).
class PcapWriter {
 public:
  // Open creates (or truncates) `path` and writes the global header. Frames
  // longer than `snaplen` are cut to it (with their original length kept).
  static absl::StatusOr<PcapWriter> Open(const std::string& path,
                                         uint32_t snaplen = 262144);

  PcapWriter(PcapWriter&& other) noexcept;
  PcapWriter& operator=(PcapWriter&& other) noexcept;
  PcapWriter(const PcapWriter&) = delete;
  PcapWriter& operator=(const PcapWriter&) = delete;
  ~PcapWriter();

  // Write appends one frame captured at `timestamp` (at or after the epoch;
  // microsecond precision).
  absl::Status Write(std::span<const uint8_t> frame, absl::Time timestamp);

  // Close flushes and closes the file. Write after Close is an error.
  absl::Status Close();

 private:
  PcapWriter(std::FILE* file, std::string path, uint32_t snaplen)
      : file_(file), path_(std::move(path)), snaplen_(snaplen) {}

  std::FILE* file_ = nullptr;
  std::string path_;
  uint32_t snaplen_ = 0;
};

// WritePcapFile writes `frames` to a new pcap file at `path`, stamped one
// millisecond apart from 2000-01-01T00:00:00Z so the file is reproducible.
absl::Status WritePcapFile(const std::string& path,
                           std::span<const std::vector<uint8_t>> frames);

}  // namespace anylb::dataplane_testing

#endif  // ANYLB_LBNODE_DATAPLANE_TESTING_PCAP_WRITER_H_
