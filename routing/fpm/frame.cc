#include "routing/fpm/frame.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace anylb::routing::fpm {

std::string_view FpmErrorName(FpmError error) {
  switch (error) {
    case FpmError::kBadVersion:
      return "bad_version";
    case FpmError::kBadType:
      return "bad_type";
    case FpmError::kBadLength:
      return "bad_length";
    case FpmError::kTruncated:
      return "truncated";
    case FpmError::kBadNetlink:
      return "bad_netlink";
    case FpmError::kBadProtobuf:
      return "bad_protobuf";
    case FpmError::kSocket:
      return "socket";
  }
  return "unknown";
}

std::vector<uint8_t> EncodeFrame(FrameType type,
                                 std::span<const uint8_t> payload) {
  const size_t size =
      std::min(payload.size(), kMaxFrameBytes - kFrameHeaderBytes);
  const size_t length = size + kFrameHeaderBytes;
  std::vector<uint8_t> frame;
  frame.reserve(length);
  frame.push_back(kFrameVersion);
  frame.push_back(static_cast<uint8_t>(type));
  frame.push_back(static_cast<uint8_t>(length >> 8));
  frame.push_back(static_cast<uint8_t>(length));
  frame.insert(frame.end(), payload.begin(), payload.begin() + size);
  return frame;
}

void FrameReader::Append(std::span<const uint8_t> bytes) {
  if (read_ > 0) {
    buffer_.erase(buffer_.begin(), buffer_.begin() + read_);
    read_ = 0;
  }
  buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
}

FrameReader::Result FrameReader::Next(Frame* frame, FpmError* error,
                                      std::string* reason) {
  if (!failed_ && buffered() >= kFrameHeaderBytes) {
    const uint8_t* header = buffer_.data() + read_;
    const size_t length = size_t{header[2]} << 8 | header[3];
    if (header[0] != kFrameVersion) {
      failed_ = true;
      error_ = FpmError::kBadVersion;
      reason_ = absl::StrCat("FPM frame header version ", header[0],
                             " (only version 1 exists)");
    } else if (header[1] != static_cast<uint8_t>(FrameType::kNetlink) &&
               header[1] != static_cast<uint8_t>(FrameType::kProtobuf)) {
      failed_ = true;
      error_ = FpmError::kBadType;
      reason_ = absl::StrCat("FPM frame type ", header[1],
                             " (1 = netlink, 2 = protobuf)");
    } else if (length < kFrameHeaderBytes) {
      failed_ = true;
      error_ = FpmError::kBadLength;
      reason_ = absl::StrCat("FPM frame length ", length,
                             " is shorter than its 4-byte header");
    } else if (buffered() >= length) {
      frame->type = static_cast<FrameType>(header[1]);
      frame->payload = std::span<const uint8_t>(header + kFrameHeaderBytes,
                                                length - kFrameHeaderBytes);
      read_ += length;
      return Result::kFrame;
    }
  }
  if (failed_) {
    *error = error_;
    *reason = reason_;
    return Result::kError;
  }
  return Result::kNeedMore;
}

}  // namespace anylb::routing::fpm
