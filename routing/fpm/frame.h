// FPM framing: the 4-byte header FRR's fpm/fpm.h puts before every message
// on the zebra → FPM server TCP stream, and a reader that cuts a byte stream
// into frames.
//
//   uint8  version   1 (the only version)
//   uint8  msg_type  1: netlink (dplane_fpm_nl), 2: protobuf (fpm.proto)
//   uint16 msg_len   network order, header included: 4 .. 65535
//
// A frame with another version or type, or a length below 4, is an error:
// the stream cannot be trusted past it, so the server closes the
// connection (FrameReader reports the reason; nothing after it is read).
//
// Threading: FrameReader is a plain value, used by one thread.

#ifndef ANYLB_ROUTING_FPM_FRAME_H_
#define ANYLB_ROUTING_FPM_FRAME_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace anylb::routing::fpm {

inline constexpr size_t kFrameHeaderBytes = 4;
inline constexpr uint8_t kFrameVersion = 1;
inline constexpr size_t kMaxFrameBytes = 65535;

// FrameType is the header's msg_type.
enum class FrameType : uint8_t {
  kNetlink = 1,   // One or more rtnetlink messages.
  kProtobuf = 2,  // One serialised anylb.fpm.Message (proto/fpm/fpm.proto).
};

// FpmError is why the server closed a connection: the `reason` label of
// anylb_fpm_errors_total.
enum class FpmError : uint8_t {
  kBadVersion,   // Header version is not 1.
  kBadType,      // Header type is neither 1 nor 2.
  kBadLength,    // Header length below 4.
  kTruncated,    // The peer closed the stream in the middle of a frame.
  kBadNetlink,   // A netlink payload that does not decode.
  kBadProtobuf,  // A protobuf payload that does not decode.
  kSocket,       // A read error on the connection.
};
inline constexpr int kFpmErrorCount = 7;

// FpmErrorName returns "bad_version", "bad_type", "bad_length",
// "truncated", "bad_netlink", "bad_protobuf" or "socket".
std::string_view FpmErrorName(FpmError error);

// Frame is one FPM message; payload excludes the header and points into the
// FrameReader that produced it (valid until its next Append or Next).
struct Frame {
  FrameType type = FrameType::kNetlink;
  std::span<const uint8_t> payload;
};

// EncodeFrame returns `payload` with its header (for senders and tests).
// `payload` must be at most kMaxFrameBytes - 4 bytes (longer is cut).
std::vector<uint8_t> EncodeFrame(FrameType type,
                                 std::span<const uint8_t> payload);

// FrameReader cuts a byte stream into frames.
class FrameReader {
 public:
  enum class Result : uint8_t {
    kFrame,     // *frame holds the next frame.
    kNeedMore,  // No whole frame buffered.
    kError,     // The header at the read position is invalid (see file
                // comment); *error and *reason say why. Sticky.
  };

  // Append adds received bytes.
  void Append(std::span<const uint8_t> bytes);

  // Next returns the next whole frame, if any.
  Result Next(Frame* frame, FpmError* error, std::string* reason);

  // buffered is how many received bytes are not yet returned in a frame:
  // non-zero at end of stream means the last frame was truncated.
  size_t buffered() const { return buffer_.size() - read_; }

 private:
  std::vector<uint8_t> buffer_;
  size_t read_ = 0;
  bool failed_ = false;
  FpmError error_ = FpmError::kBadVersion;
  std::string reason_;
};

}  // namespace anylb::routing::fpm

#endif  // ANYLB_ROUTING_FPM_FRAME_H_
