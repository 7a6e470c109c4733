// IP addresses, prefixes and endpoints as small value types.
//
// These are the only representations of addresses that cross component
// boundaries: config, the controller's state, the dataplane's tables and logs
// all use them. Text is parsed strictly, once, at the edge (Parse() returns
// absl::InvalidArgumentError naming the offending text), and printed in one
// canonical form (RFC 5952 for IPv6), so two spellings of one address never
// end up as two map keys.
//
// All three types are trivially copyable, always hold a valid value (there is
// no "empty" state; default construction gives the IPv4 zero value), compare
// with IPv4 before IPv6, and hash with absl::Hash and std::hash.

#ifndef ANYLB_COMMON_IP_ADDRESS_H_
#define ANYLB_COMMON_IP_ADDRESS_H_

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "absl/hash/hash.h"
#include "absl/status/statusor.h"

namespace anylb {

// IpFamily is the version of an IP address.
enum class IpFamily : uint8_t {
  kV4,
  kV6,
};

// IpAddress is an IPv4 or IPv6 address.
//
// A default-constructed IpAddress is 0.0.0.0. IPv4-mapped IPv6 addresses
// (::ffff:192.0.2.1) are IPv6 addresses: they are never converted to or
// compared equal with IPv4 ones; IsV4Mapped() tells them apart.
//
// Ordering is by family (every IPv4 address sorts before every IPv6 address),
// then numerically.
class IpAddress {
 public:
  // IpAddress() is the IPv4 address 0.0.0.0.
  constexpr IpAddress() = default;

  // Parse() parses an IPv4 address in dotted-decimal form ("192.0.2.1": four
  // octets, each 0-255 without leading zeros) or an IPv6 address in any
  // RFC 4291 section 2.2 form ("2001:db8::1", "::ffff:192.0.2.1"; hex digits
  // in either case). It rejects anything else, including surrounding
  // whitespace, brackets and zone indices ("fe80::1%eth0"), with an
  // absl::InvalidArgumentError whose message quotes `text`.
  [[nodiscard]] static absl::StatusOr<IpAddress> Parse(std::string_view text);

  // FromV4() returns the IPv4 address with the given value in host byte
  // order: FromV4(0xc0000201) is 192.0.2.1.
  [[nodiscard]] static constexpr IpAddress FromV4(uint32_t host_order) {
    IpAddress address;
    address.bytes_[0] = static_cast<uint8_t>(host_order >> 24);
    address.bytes_[1] = static_cast<uint8_t>(host_order >> 16);
    address.bytes_[2] = static_cast<uint8_t>(host_order >> 8);
    address.bytes_[3] = static_cast<uint8_t>(host_order);
    return address;
  }

  // FromV4Bytes() returns the IPv4 address whose bytes, in network order,
  // are `bytes` (as in struct in_addr or an IPv4 header).
  [[nodiscard]] static constexpr IpAddress FromV4Bytes(
      std::span<const uint8_t, 4> bytes) {
    IpAddress address;
    for (size_t i = 0; i < bytes.size(); ++i) address.bytes_[i] = bytes[i];
    return address;
  }

  // FromV6Bytes() returns the IPv6 address whose bytes, in network order,
  // are `bytes` (as in struct in6_addr or an IPv6 header).
  [[nodiscard]] static constexpr IpAddress FromV6Bytes(
      std::span<const uint8_t, 16> bytes) {
    IpAddress address;
    address.family_ = IpFamily::kV6;
    for (size_t i = 0; i < bytes.size(); ++i) address.bytes_[i] = bytes[i];
    return address;
  }

  // family(), is_v4() and is_v6() tell IPv4 from IPv6 addresses.
  [[nodiscard]] constexpr IpFamily family() const { return family_; }
  [[nodiscard]] constexpr bool is_v4() const {
    return family_ == IpFamily::kV4;
  }
  [[nodiscard]] constexpr bool is_v6() const {
    return family_ == IpFamily::kV6;
  }

  // af() returns AF_INET or AF_INET6, for socket and netlink calls.
  [[nodiscard]] int af() const;

  // bit_length() returns 32 for IPv4 and 128 for IPv6: the number of bits in
  // the address, and so the longest prefix length.
  [[nodiscard]] constexpr int bit_length() const { return is_v4() ? 32 : 128; }

  // bytes() returns the address in network byte order: 4 bytes for IPv4, 16
  // for IPv6. The span points into this object.
  [[nodiscard]] constexpr std::span<const uint8_t> bytes() const {
    return {bytes_.data(), is_v4() ? size_t{4} : size_t{16}};
  }

  // v4_host_order() returns an IPv4 address as a number in host byte order
  // (the inverse of FromV4()). It returns 0 for an IPv6 address.
  [[nodiscard]] constexpr uint32_t v4_host_order() const {
    if (!is_v4()) return 0;
    return uint32_t{bytes_[0]} << 24 | uint32_t{bytes_[1]} << 16 |
           uint32_t{bytes_[2]} << 8 | uint32_t{bytes_[3]};
  }

  // v4_network_order() returns an IPv4 address as a number in network byte
  // order, as stored in in_addr::s_addr or iphdr::saddr. It returns 0 for an
  // IPv6 address.
  [[nodiscard]] uint32_t v4_network_order() const;

  // IsV4Mapped() returns whether this is an IPv4-mapped IPv6 address,
  // ::ffff:0:0/96 (RFC 4291 section 2.5.5.2).
  [[nodiscard]] bool IsV4Mapped() const;

  // Masked() returns this address with all but the first `prefix_length`
  // bits cleared: 192.0.2.77 masked to 24 bits is 192.0.2.0. `prefix_length`
  // is clamped to [0, bit_length()].
  [[nodiscard]] IpAddress Masked(int prefix_length) const;

  // ToString() returns the canonical text form: dotted decimal for IPv4 and
  // RFC 5952 for IPv6 (lowercase, no leading zeros, the longest run of two
  // or more zero groups as "::", and IPv4-mapped addresses as
  // "::ffff:192.0.2.1"). Parse(a.ToString()) == a.
  [[nodiscard]] std::string ToString() const;

  // Equality is by family and bytes; ordering as in the class comment.
  friend constexpr bool operator==(const IpAddress&,
                                   const IpAddress&) = default;
  friend constexpr std::strong_ordering operator<=>(const IpAddress&,
                                                    const IpAddress&) = default;

  template <typename H>
  friend H AbslHashValue(H state, const IpAddress& address) {
    return H::combine(std::move(state), address.family_, address.bytes_);
  }

 private:
  // The order of the members gives the order of operator<=>. For IPv4 only
  // the first 4 bytes are used; the others are always zero.
  IpFamily family_ = IpFamily::kV4;
  std::array<uint8_t, 16> bytes_ = {};
};

// IpPrefix is an IPv4 or IPv6 network: an address and a prefix length, with
// every bit of the address past the prefix length zero (so equal networks are
// equal values). A default-constructed IpPrefix is 0.0.0.0/0.
//
// Ordering is by address, then by length: 192.0.2.0/24 < 192.0.2.0/25 <
// 192.0.2.128/25.
class IpPrefix {
 public:
  // IpPrefix() is 0.0.0.0/0.
  constexpr IpPrefix() = default;

  // Parse() parses "address/length" ("192.0.2.0/24", "2001:db8::/32"), or a
  // bare address as a single-host prefix (/32 or /128). The address is parsed
  // as by IpAddress::Parse(); the length is decimal without leading zeros, at
  // most the address's bit length. An address with bits set past the prefix
  // length is an error (a typo in a route is better caught than silently
  // widened); the message suggests the masked prefix. Errors are
  // absl::InvalidArgumentError and quote `text`.
  [[nodiscard]] static absl::StatusOr<IpPrefix> Parse(std::string_view text);

  // Create() returns the prefix of `length` bits containing `address`,
  // clearing the bits past the prefix: Create(192.0.2.77, 24) is
  // 192.0.2.0/24. A length outside [0, address.bit_length()] is an
  // absl::InvalidArgumentError.
  [[nodiscard]] static absl::StatusOr<IpPrefix> Create(const IpAddress& address,
                                                       int length);

  // Host() returns the prefix containing only `address`: /32 or /128.
  [[nodiscard]] static IpPrefix Host(const IpAddress& address) {
    return {address, address.bit_length()};
  }

  // address() returns the first address of the prefix (its network address).
  [[nodiscard]] const IpAddress& address() const { return address_; }

  // length() returns the prefix length in bits.
  [[nodiscard]] int length() const { return length_; }

  [[nodiscard]] IpFamily family() const { return address_.family(); }
  [[nodiscard]] bool is_v4() const { return address_.is_v4(); }
  [[nodiscard]] bool is_v6() const { return address_.is_v6(); }

  // Contains() returns whether `address` is in this prefix. An address of the
  // other family never is (IPv4-mapped IPv6 addresses included).
  [[nodiscard]] bool Contains(const IpAddress& address) const;

  // Contains() returns whether every address of `other` is in this prefix:
  // true for this prefix itself, false for a prefix of the other family.
  [[nodiscard]] bool Contains(const IpPrefix& other) const;

  // ToString() returns "address/length" with the address in canonical form
  // (IpAddress::ToString()), always with the length: "192.0.2.1/32".
  [[nodiscard]] std::string ToString() const;

  friend bool operator==(const IpPrefix&, const IpPrefix&) = default;
  friend std::strong_ordering operator<=>(const IpPrefix&,
                                          const IpPrefix&) = default;

  template <typename H>
  friend H AbslHashValue(H state, const IpPrefix& prefix) {
    return H::combine(std::move(state), prefix.address_, prefix.length_);
  }

 private:
  // `address` must already be masked to `length` bits.
  IpPrefix(const IpAddress& address, int length)
      : address_(address), length_(static_cast<uint8_t>(length)) {}

  IpAddress address_;
  uint8_t length_ = 0;
};

// Endpoint is an IP address and a port: where a service listens or a backend
// is reached. A default-constructed Endpoint is 0.0.0.0:0.
//
// Ordering is by address, then by port.
class Endpoint {
 public:
  // Endpoint() is 0.0.0.0:0.
  constexpr Endpoint() = default;
  constexpr Endpoint(const IpAddress& address, uint16_t port)
      : address_(address), port_(port) {}

  // Parse() parses "192.0.2.1:80" or "[2001:db8::1]:443": an IPv4 address or
  // a bracketed IPv6 address (as by IpAddress::Parse()), a colon, and a port
  // of decimal digits, 0-65535, without leading zeros. Errors are
  // absl::InvalidArgumentError and quote `text`; an IPv6 address without
  // brackets gets a suggestion of the bracketed form.
  [[nodiscard]] static absl::StatusOr<Endpoint> Parse(std::string_view text);

  [[nodiscard]] const IpAddress& address() const { return address_; }
  [[nodiscard]] uint16_t port() const { return port_; }

  [[nodiscard]] IpFamily family() const { return address_.family(); }
  [[nodiscard]] bool is_v4() const { return address_.is_v4(); }
  [[nodiscard]] bool is_v6() const { return address_.is_v6(); }

  // ToString() returns "192.0.2.1:80" or "[2001:db8::1]:443", the forms
  // Parse() accepts, with the address in canonical form.
  [[nodiscard]] std::string ToString() const;

  friend bool operator==(const Endpoint&, const Endpoint&) = default;
  friend std::strong_ordering operator<=>(const Endpoint&,
                                          const Endpoint&) = default;

  template <typename H>
  friend H AbslHashValue(H state, const Endpoint& endpoint) {
    return H::combine(std::move(state), endpoint.address_, endpoint.port_);
  }

 private:
  IpAddress address_;
  uint16_t port_ = 0;
};

// operator<< prints ToString(), for logs and test failure messages.
std::ostream& operator<<(std::ostream& os, const IpAddress& address);
std::ostream& operator<<(std::ostream& os, const IpPrefix& prefix);
std::ostream& operator<<(std::ostream& os, const Endpoint& endpoint);

}  // namespace anylb

// std::hash agrees with absl::Hash, for std::unordered_map and friends.
template <>
struct std::hash<anylb::IpAddress> {
  size_t operator()(const anylb::IpAddress& address) const {
    return absl::Hash<anylb::IpAddress>()(address);
  }
};

template <>
struct std::hash<anylb::IpPrefix> {
  size_t operator()(const anylb::IpPrefix& prefix) const {
    return absl::Hash<anylb::IpPrefix>()(prefix);
  }
};

template <>
struct std::hash<anylb::Endpoint> {
  size_t operator()(const anylb::Endpoint& endpoint) const {
    return absl::Hash<anylb::Endpoint>()(endpoint);
  }
};

#endif  // ANYLB_COMMON_IP_ADDRESS_H_
