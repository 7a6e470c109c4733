#include "lbnode/nexthop/kernel_next_hop_resolver.h"

#include <type_traits>
#include <utility>

namespace anylb::nexthop {
namespace {

using routing::netlink::NextHop;

static_assert(std::is_same_v<routing::netlink::MacAddress, dataplane::Mac>,
              "routing::netlink::MacAddress and dataplane::Mac must agree");

// AddressHash is FNV-1a over the address bytes: deterministic on every
// worker and node, cheap, and enough to spread backends over ECMP paths.
uint64_t AddressHash(const IpAddress& address) {
  uint64_t hash = 14695981039346656037ull;
  for (uint8_t byte : address.bytes()) {
    hash ^= byte;
    hash *= 1099511628211ull;
  }
  return hash;
}

}  // namespace

KernelNextHopResolver::KernelNextHopResolver(
    std::unique_ptr<routing::netlink::NextHopReader> reader,
    const KernelNextHopResolverOptions& options)
    : reader_(std::move(reader)), options_(options) {}

bool KernelNextHopResolver::Resolve(const IpAddress& dst, dataplane::Mac* mac) {
  const NextHop hop =
      reader_->Lookup(dst, AddressHash(dst), options_.egress_ifindex);
  switch (hop.result) {
    case NextHop::Result::kOk:
      ++stats_.resolved;
      *mac = hop.mac;
      return true;
    case NextHop::Result::kNoRoute:
    case NextHop::Result::kRejected:
      ++stats_.no_route;
      return false;
    case NextHop::Result::kNoNeighbor:
      ++stats_.no_neighbor;
      return false;
    case NextHop::Result::kWrongInterface:
      ++stats_.wrong_interface;
      return false;
  }
  return false;
}

}  // namespace anylb::nexthop
