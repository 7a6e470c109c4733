// Fuzz target over the address, prefix and endpoint parsers: no input may
// crash them, and whatever parses must format to text that parses back to
// the same value.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/ip_address.h"

namespace {

template <typename T>
void CheckRoundTrip(std::string_view text) {
  auto parsed = T::Parse(text);
  if (!parsed.ok()) return;
  const std::string formatted = parsed->ToString();
  auto again = T::Parse(formatted);
  if (!again.ok() || !(*again == *parsed) || again->ToString() != formatted) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  CheckRoundTrip<anylb::IpAddress>(text);
  CheckRoundTrip<anylb::IpPrefix>(text);
  CheckRoundTrip<anylb::Endpoint>(text);
  return 0;
}
