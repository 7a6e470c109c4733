#include "routing/netlink/tables.h"

#include <algorithm>
#include <map>

namespace anylb::routing::netlink {

RouteTable RouteTable::Build(std::vector<Route> routes) {
  // Lowest priority per prefix; ties keep the first given.
  std::map<IpPrefix, size_t> best;
  for (size_t i = 0; i < routes.size(); ++i) {
    auto [it, inserted] = best.emplace(routes[i].destination, i);
    if (!inserted && routes[i].priority < routes[it->second].priority) {
      it->second = i;
    }
  }
  RouteTable table;
  table.routes_.reserve(best.size());
  for (const auto& [prefix, index] : best) {
    table.routes_.push_back(std::move(routes[index]));
  }
  std::map<int, LengthIndex, std::greater<>> v4;
  std::map<int, LengthIndex, std::greater<>> v6;
  for (uint32_t i = 0; i < table.routes_.size(); ++i) {
    const IpPrefix& prefix = table.routes_[i].destination;
    LengthIndex& index = (prefix.is_v4() ? v4 : v6)[prefix.length()];
    index.length = prefix.length();
    index.by_network.emplace(prefix.address(), i);
  }
  for (auto& [length, index] : v4) table.v4_.push_back(std::move(index));
  for (auto& [length, index] : v6) table.v6_.push_back(std::move(index));
  return table;
}

const Route* RouteTable::Lookup(const IpAddress& address) const {
  const std::vector<LengthIndex>& indexes = address.is_v4() ? v4_ : v6_;
  for (const LengthIndex& index : indexes) {
    auto it = index.by_network.find(address.Masked(index.length));
    if (it != index.by_network.end()) return &routes_[it->second];
  }
  return nullptr;
}

const RouteNextHop* RouteTable::SelectNextHop(const Route& route,
                                              uint64_t flow_hash,
                                              int only_ifindex) {
  const std::vector<RouteNextHop>& hops = route.next_hops;
  auto takes_part = [only_ifindex](const RouteNextHop& hop) {
    return only_ifindex == 0 || hop.ifindex == only_ifindex;
  };
  if (hops.size() == 1) return takes_part(hops.front()) ? hops.data() : nullptr;
  uint64_t total = 0;
  for (const RouteNextHop& hop : hops) {
    if (takes_part(hop)) total += hop.weight;
  }
  if (total == 0) return nullptr;
  uint64_t point = flow_hash % total;
  for (const RouteNextHop& hop : hops) {
    if (!takes_part(hop)) continue;
    if (point < hop.weight) return &hop;
    point -= hop.weight;
  }
  return nullptr;  // Unreachable: the shares cover [0, total).
}

}  // namespace anylb::routing::netlink
