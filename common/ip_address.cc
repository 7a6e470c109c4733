#include "common/ip_address.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <ostream>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace anylb {
namespace {

static_assert(std::is_trivially_copyable_v<IpAddress>);
static_assert(std::is_trivially_copyable_v<IpPrefix>);
static_assert(std::is_trivially_copyable_v<Endpoint>);

absl::string_view ToAbsl(std::string_view text) {
  return {text.data(), text.size()};
}

// Quote() returns `text` in double quotes, with quotes, backslashes and
// unprintable bytes escaped so that an error message stays one readable line.
std::string Quote(std::string_view text) {
  return absl::StrCat("\"", absl::CHexEscape(ToAbsl(text)), "\"");
}

// Invalid() is the error for text that is not a valid `what`, with `reason`
// saying why: `invalid IP address "300.1.1.1": octet "300" is above 255`.
absl::Status Invalid(std::string_view what, std::string_view text,
                     absl::string_view reason) {
  return absl::InvalidArgumentError(
      absl::StrCat("invalid ", ToAbsl(what), " ", Quote(text), ": ", reason));
}

// The parsers below report errors as absl::InvalidArgumentError whose message
// is only the reason; Parse() functions add what was being parsed and the
// whole text with Invalid().

// ParseDecimal() parses a decimal number from 0 to `max` written as digits
// only, without leading zeros ("0" itself is fine). `name` is what the number
// is, for messages: `port "65536" is above 65535`.
absl::StatusOr<uint32_t> ParseDecimal(std::string_view name,
                                      std::string_view digits, uint32_t max) {
  if (digits.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("missing ", ToAbsl(name)));
  }
  if (!std::all_of(digits.begin(), digits.end(), absl::ascii_isdigit)) {
    return absl::InvalidArgumentError(absl::StrCat(
        ToAbsl(name), " ", Quote(digits), " is not a decimal number"));
  }
  if (digits.size() > 1 && digits[0] == '0') {
    return absl::InvalidArgumentError(
        absl::StrCat(ToAbsl(name), " ", Quote(digits),
                     " has a leading zero (ambiguous: octal or decimal?)"));
  }
  uint64_t value = 0;
  for (const char c : digits) {
    value = value * 10 + static_cast<uint64_t>(c - '0');
    if (value > max) {
      return absl::InvalidArgumentError(
          absl::StrCat(ToAbsl(name), " ", Quote(digits), " is above ", max));
    }
  }
  return static_cast<uint32_t>(value);
}

// ParseV4() parses exactly four dotted-decimal octets, "192.0.2.1": none of
// inet_aton()'s shorthand ("10.1") or hex and octal octets ("0x0a", "012").
absl::StatusOr<IpAddress> ParseV4(std::string_view text) {
  std::array<uint8_t, 4> bytes;
  size_t octet_count = 0;
  size_t start = 0;
  while (true) {
    const size_t dot = text.find('.', start);
    const std::string_view octet = text.substr(start, dot - start);
    if (octet_count < bytes.size()) {
      if (octet.empty()) {
        return absl::InvalidArgumentError(
            "an IPv4 address has no empty octets");
      }
      absl::StatusOr<uint32_t> value = ParseDecimal("octet", octet, 255);
      if (!value.ok()) return value.status();
      bytes[octet_count] = static_cast<uint8_t>(*value);
    }
    ++octet_count;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  if (octet_count != bytes.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("an IPv4 address has 4 octets, not ", octet_count));
  }
  return IpAddress::FromV4Bytes(bytes);
}

// ParseV6() parses an RFC 4291 section 2.2 address with inet_pton(), after
// rejecting the forms that deserve a specific message.
absl::StatusOr<IpAddress> ParseV6(std::string_view text) {
  if (const size_t percent = text.find('%');
      percent != std::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "zone indices (", Quote(text.substr(percent)), ") are not supported"));
  }
  if (text.front() == '[' || text.back() == ']') {
    return absl::InvalidArgumentError(
        "brackets belong only around the address in an endpoint, as in "
        "\"[2001:db8::1]:443\"");
  }
  // inet_pton() needs a NUL-terminated string. The longest valid text,
  // "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", has 45 characters.
  char buffer[64];
  std::array<uint8_t, 16> bytes;
  if (text.size() >= sizeof(buffer)) {
    return absl::InvalidArgumentError("not a valid IPv6 address (too long)");
  }
  std::memcpy(buffer, text.data(), text.size());
  buffer[text.size()] = '\0';
  if (inet_pton(AF_INET6, buffer, bytes.data()) != 1) {
    return absl::InvalidArgumentError("not a valid IPv6 address");
  }
  return IpAddress::FromV6Bytes(bytes);
}

// ParseAddress() is IpAddress::Parse() with only the reason in its errors.
absl::StatusOr<IpAddress> ParseAddress(std::string_view text) {
  if (text.empty()) return absl::InvalidArgumentError("empty string");
  if (std::any_of(text.begin(), text.end(), absl::ascii_isspace)) {
    return absl::InvalidArgumentError("contains whitespace");
  }
  if (text.find(':') != std::string_view::npos) return ParseV6(text);
  if (text.find('.') != std::string_view::npos) return ParseV4(text);
  return absl::InvalidArgumentError("not an IPv4 or IPv6 address");
}

void AppendV4(std::span<const uint8_t> bytes, std::string* out) {
  absl::StrAppend(out, bytes[0], ".", bytes[1], ".", bytes[2], ".", bytes[3]);
}

// AppendV6() writes the RFC 5952 section 4 form of an IPv6 address, and the
// section 5 mixed form for IPv4-mapped addresses.
void AppendV6(const IpAddress& address, std::string* out) {
  const std::span<const uint8_t> bytes = address.bytes();
  if (address.IsV4Mapped()) {
    out->append("::ffff:");
    AppendV4(bytes.subspan(12), out);
    return;
  }
  std::array<uint16_t, 8> groups;
  for (size_t i = 0; i < groups.size(); ++i) {
    groups[i] = static_cast<uint16_t>(bytes[2 * i] << 8 | bytes[2 * i + 1]);
  }
  // Section 4.2: "::" replaces the longest run of zero groups (the first of
  // equally long runs), and only a run of two or more.
  int best_start = -1;
  int best_length = 1;
  for (int i = 0; i < 8;) {
    if (groups[i] != 0) {
      ++i;
      continue;
    }
    int end = i;
    while (end < 8 && groups[end] == 0) ++end;
    if (end - i > best_length) {
      best_start = i;
      best_length = end - i;
    }
    i = end;
  }
  for (int i = 0; i < 8;) {
    if (i == best_start) {
      out->append("::");
      i += best_length;
      continue;
    }
    if (i != 0 && i != best_start + best_length) out->push_back(':');
    // Section 4.1 and 4.3: no leading zeros, lowercase.
    absl::StrAppend(out, absl::Hex(groups[i]));
    ++i;
  }
}

}  // namespace

absl::StatusOr<IpAddress> IpAddress::Parse(std::string_view text) {
  absl::StatusOr<IpAddress> address = ParseAddress(text);
  if (!address.ok()) {
    return Invalid("IP address", text, address.status().message());
  }
  return address;
}

int IpAddress::af() const { return is_v4() ? AF_INET : AF_INET6; }

uint32_t IpAddress::v4_network_order() const {
  if (!is_v4()) return 0;
  uint32_t value;
  std::memcpy(&value, bytes_.data(), sizeof(value));
  return value;
}

bool IpAddress::IsV4Mapped() const {
  static constexpr uint8_t kPrefix[12] = {0, 0, 0, 0, 0,    0,
                                          0, 0, 0, 0, 0xff, 0xff};
  return is_v6() && std::memcmp(bytes_.data(), kPrefix, sizeof(kPrefix)) == 0;
}

IpAddress IpAddress::Masked(int prefix_length) const {
  const int kept_bits = std::clamp(prefix_length, 0, bit_length());
  IpAddress masked = *this;
  for (int i = 0; i < static_cast<int>(masked.bytes_.size()); ++i) {
    const int kept_in_byte = std::clamp(kept_bits - 8 * i, 0, 8);
    masked.bytes_[i] &= static_cast<uint8_t>(0xff00 >> kept_in_byte);
  }
  return masked;
}

std::string IpAddress::ToString() const {
  std::string out;
  if (is_v4()) {
    AppendV4(bytes(), &out);
  } else {
    AppendV6(*this, &out);
  }
  return out;
}

absl::StatusOr<IpPrefix> IpPrefix::Parse(std::string_view text) {
  constexpr std::string_view kWhat = "IP prefix";
  const size_t slash = text.find('/');
  const std::string_view address_text = text.substr(0, slash);
  if (slash != std::string_view::npos && address_text.empty()) {
    return Invalid(kWhat, text, "missing address before \"/\"");
  }
  absl::StatusOr<IpAddress> address = ParseAddress(address_text);
  if (!address.ok()) return Invalid(kWhat, text, address.status().message());
  if (slash == std::string_view::npos) return Host(*address);

  absl::StatusOr<uint32_t> length = ParseDecimal(
      address->is_v4() ? "IPv4 prefix length" : "IPv6 prefix length",
      text.substr(slash + 1), static_cast<uint32_t>(address->bit_length()));
  if (!length.ok()) return Invalid(kWhat, text, length.status().message());
  const IpAddress masked = address->Masked(static_cast<int>(*length));
  if (masked != *address) {
    return Invalid(kWhat, text,
                   absl::StrCat("host bits are set; did you mean ",
                                masked.ToString(), "/", *length, "?"));
  }
  return IpPrefix(masked, static_cast<int>(*length));
}

absl::StatusOr<IpPrefix> IpPrefix::Create(const IpAddress& address,
                                          int length) {
  if (length < 0 || length > address.bit_length()) {
    return absl::InvalidArgumentError(
        absl::StrCat("prefix length ", length, " for ", address.ToString(),
                     " is outside [0, ", address.bit_length(), "]"));
  }
  return IpPrefix(address.Masked(length), length);
}

bool IpPrefix::Contains(const IpAddress& address) const {
  return address.family() == family() && address.Masked(length_) == address_;
}

bool IpPrefix::Contains(const IpPrefix& other) const {
  return other.family() == family() && other.length_ >= length_ &&
         other.address_.Masked(length_) == address_;
}

std::string IpPrefix::ToString() const {
  return absl::StrCat(address_.ToString(), "/", length_);
}

absl::StatusOr<Endpoint> Endpoint::Parse(std::string_view text) {
  constexpr std::string_view kWhat = "endpoint";
  if (text.empty()) return Invalid(kWhat, text, "empty string");

  std::string_view address_text;
  std::string_view port_text;  // From just after the ':'.
  const bool bracketed = text.front() == '[';
  if (bracketed) {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) {
      return Invalid(kWhat, text, R"(missing "]" after the IPv6 address)");
    }
    address_text = text.substr(1, close - 1);
    const std::string_view rest = text.substr(close + 1);
    if (rest.empty() || rest.front() != ':') {
      return Invalid(kWhat, text, R"(missing ":port" after "]")");
    }
    port_text = rest.substr(1);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return Invalid(kWhat, text, "missing \":port\"");
    }
    address_text = text.substr(0, colon);
    port_text = text.substr(colon + 1);
    if (address_text.find(':') != std::string_view::npos) {
      // More than one colon: an IPv6 address without brackets. Suggest the
      // bracketed form if splitting at the last colon gives one.
      absl::StatusOr<IpAddress> address = ParseAddress(address_text);
      absl::StatusOr<uint32_t> port = ParseDecimal("port", port_text, 65535);
      if (address.ok() && port.ok()) {
        return Invalid(kWhat, text,
                       absl::StrCat("an IPv6 address in an endpoint needs "
                                    "brackets; did you mean \"[",
                                    address->ToString(), "]:", *port, "\"?"));
      }
      return Invalid(kWhat, text,
                     "an IPv6 address in an endpoint needs brackets, as in "
                     "\"[2001:db8::1]:443\"");
    }
  }

  absl::StatusOr<IpAddress> address = ParseAddress(address_text);
  if (!address.ok()) return Invalid(kWhat, text, address.status().message());
  absl::StatusOr<uint32_t> port = ParseDecimal("port", port_text, 65535);
  if (!port.ok()) return Invalid(kWhat, text, port.status().message());
  if (bracketed && address->is_v4()) {
    return Invalid(kWhat, text,
                   absl::StrCat("brackets are only for IPv6 addresses; did "
                                "you mean \"",
                                address->ToString(), ":", *port, "\"?"));
  }
  return Endpoint(*address, static_cast<uint16_t>(*port));
}

std::string Endpoint::ToString() const {
  if (is_v4()) return absl::StrCat(address_.ToString(), ":", port_);
  return absl::StrCat("[", address_.ToString(), "]:", port_);
}

std::ostream& operator<<(std::ostream& os, const IpAddress& address) {
  return os << address.ToString();
}

std::ostream& operator<<(std::ostream& os, const IpPrefix& prefix) {
  return os << prefix.ToString();
}

std::ostream& operator<<(std::ostream& os, const Endpoint& endpoint) {
  return os << endpoint.ToString();
}

}  // namespace anylb
