// Immutable next-hop tables: neighbours and routes, as published by the
// control thread (KernelNextHops) and read by every worker.
//
// Ownership and threading: a table is built once by one thread (Build*),
// then never changes; any number of threads may look up concurrently
// without synchronization. Lookups never allocate, lock or throw.

#ifndef ANYLB_ROUTING_NETLINK_TABLES_H_
#define ANYLB_ROUTING_NETLINK_TABLES_H_

#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/ip_address.h"
#include "routing/netlink/messages.h"

namespace anylb::routing::netlink {

// AddressHash hashes an IpAddress inline (one 64x64→128 multiply), for the
// per-packet tables: absl::Hash goes through out-of-line calls into
// Debian's shared abseil, which doubled the lookup cost (benchmark).
struct AddressHash {
  static uint64_t Mix(uint64_t a, uint64_t b) {
    const unsigned __int128 product =
        static_cast<unsigned __int128>(a ^ 0x9e3779b97f4a7c15ull) *
        (b ^ 0xc2b2ae3d27d4eb4full);
    return static_cast<uint64_t>(product) ^
           static_cast<uint64_t>(product >> 64);
  }
  static uint64_t Of(const IpAddress& address, uint64_t salt = 0) {
    const std::span<const uint8_t> bytes = address.bytes();
    uint64_t low = 0;
    uint64_t high = salt << 8;
    if (bytes.size() == 4) {
      uint32_t v4;
      std::memcpy(&v4, bytes.data(), sizeof(v4));
      low = v4;
      high |= 4;
    } else {
      std::memcpy(&low, bytes.data(), 8);
      std::memcpy(&high, bytes.data() + 8, 8);
      high ^= salt << 32 | 16;
    }
    return Mix(low, high);
  }
  size_t operator()(const IpAddress& address) const { return Of(address); }
};

// NeighborKey names a neighbour: an address on an interface.
struct NeighborKey {
  int ifindex = 0;
  IpAddress address;

  friend bool operator==(const NeighborKey&, const NeighborKey&) = default;
  template <typename H>
  friend H AbslHashValue(H state, const NeighborKey& key) {
    return H::combine(std::move(state), key.ifindex, key.address);
  }
};

// NeighborKeyHash is AddressHash salted with the interface index.
struct NeighborKeyHash {
  size_t operator()(const NeighborKey& key) const {
    return AddressHash::Of(key.address, static_cast<uint32_t>(key.ifindex));
  }
};

// NeighborEntry is what the kernel knows of a neighbour.
struct NeighborEntry {
  MacAddress mac{};
  bool has_mac = false;
  uint16_t state = 0;  // NUD_* bits.

  // usable says the entry can be sent to now (IsUsableNeighborState and a
  // MAC).
  bool usable() const { return has_mac && IsUsableNeighborState(state); }
};

// NeighborTable maps (ifindex, address) to what the kernel knows.
class NeighborTable {
 public:
  using Map = absl::flat_hash_map<NeighborKey, NeighborEntry, NeighborKeyHash>;

  NeighborTable() = default;
  explicit NeighborTable(Map entries) : entries_(std::move(entries)) {}

  // Find returns the entry, or nullptr.
  const NeighborEntry* Find(int ifindex, const IpAddress& address) const {
    auto it = entries_.find(NeighborKey{ifindex, address});
    return it == entries_.end() ? nullptr : &it->second;
  }

  size_t size() const { return entries_.size(); }
  const Map& entries() const { return entries_; }

 private:
  Map entries_;
};

// Route is one destination of the route table with its next hops.
struct Route {
  IpPrefix destination;
  uint32_t priority = 0;
  RouteKind kind = RouteKind::kUnicast;
  std::vector<RouteNextHop> next_hops;  // Empty for kReject.
};

// RouteTable answers longest-prefix-match lookups over IPv4 and IPv6
// routes of the kernel's main table.
//
// Among routes to the same prefix, the lowest priority (metric) wins, as in
// the kernel. A reject route (blackhole, unreachable, prohibit) that is the
// longest match makes the lookup fail: it is not skipped for a shorter one.
//
// ECMP: a route's next hops are chosen by SelectNextHop(route, flow_hash):
// weighted, each next hop owning a share of [0, total weight) by its
// weight; flow_hash modulo the total picks the share. Equal hashes always
// give the same next hop for the same table; a caller without a flow hash
// passes 0 and always gets the first next hop.
//
// Lookup costs one hash-map probe per distinct prefix length present in the
// address's family (longest first), typically a handful.
class RouteTable {
 public:
  RouteTable() = default;

  // Build makes a table of `routes` (any order; duplicates by prefix keep
  // the lowest priority).
  static RouteTable Build(std::vector<Route> routes);

  // Lookup returns the most specific route containing `address`, or
  // nullptr.
  const Route* Lookup(const IpAddress& address) const;

  // SelectNextHop picks one next hop of a unicast route by `flow_hash` (see
  // the class comment); nullptr when the route has none. With
  // `only_ifindex` != 0 only next hops out of that interface take part
  // (their weights share the hash space); nullptr when none does.
  static const RouteNextHop* SelectNextHop(const Route& route,
                                           uint64_t flow_hash,
                                           int only_ifindex = 0);

  size_t size() const { return routes_.size(); }
  std::span<const Route> routes() const { return routes_; }

 private:
  // LengthIndex holds the routes of one prefix length, by network address.
  struct LengthIndex {
    int length = 0;
    absl::flat_hash_map<IpAddress, uint32_t, AddressHash> by_network;
  };

  std::vector<Route> routes_;
  std::vector<LengthIndex> v4_;  // Longest first.
  std::vector<LengthIndex> v6_;
};

// NextHopSnapshot is one published view: neighbours and routes. The two
// tables are shared between snapshots when only the other one changed.
struct NextHopSnapshot {
  std::shared_ptr<const NeighborTable> neighbors;
  std::shared_ptr<const RouteTable> routes;
  uint64_t generation = 0;
};

}  // namespace anylb::routing::netlink

#endif  // ANYLB_ROUTING_NETLINK_TABLES_H_
