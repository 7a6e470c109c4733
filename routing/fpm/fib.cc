#include "routing/fpm/fib.h"

#include <algorithm>
#include <utility>

namespace anylb::routing::fpm {

bool Fib::Apply(const FibUpdate& update) {
  if (const auto* route = std::get_if<RouteUpdate>(&update)) {
    if (route->deleted) return routes_.erase(route->prefix) > 0;
    auto& slot = routes_[route->prefix];
    const bool changed = !(slot.value == *route) || slot.epoch == 0;
    slot.value = *route;
    slot.epoch = epoch_;
    return changed;
  }
  const auto& next_hop = std::get<NextHopUpdate>(update);
  if (next_hop.deleted) return next_hops_.erase(next_hop.object.id) > 0;
  auto& slot = next_hops_[next_hop.object.id];
  const bool changed = !(slot.value == next_hop.object) || slot.epoch == 0;
  slot.value = next_hop.object;
  slot.epoch = epoch_;
  return changed;
}

FibSweep Fib::SweepStale() {
  FibSweep sweep;
  sweep.routes = absl::erase_if(
      routes_, [&](const auto& entry) { return entry.second.epoch < epoch_; });
  sweep.next_hops = absl::erase_if(next_hops_, [&](const auto& entry) {
    return entry.second.epoch < epoch_;
  });
  return sweep;
}

bool Fib::Resolve(const RouteUpdate& route, netlink::Route* out) const {
  out->destination = route.prefix;
  out->priority = route.priority;
  out->kind = route.kind;
  out->next_hops.clear();
  if (route.kind != netlink::RouteKind::kUnicast) return true;
  if (route.nh_id == 0) {
    out->next_hops = route.next_hops;
    return true;
  }
  auto it = next_hops_.find(route.nh_id);
  if (it == next_hops_.end()) return false;
  const NextHopObject& object = it->second.value;
  auto single = [](const NextHopObject& o, uint32_t weight) {
    netlink::RouteNextHop hop;
    hop.ifindex = o.ifindex;
    hop.has_gateway = o.has_gateway;
    hop.gateway = o.gateway;
    hop.weight = weight;
    return hop;
  };
  if (object.group.empty()) {
    if (object.blackhole) {
      out->kind = netlink::RouteKind::kReject;
      return true;
    }
    out->next_hops.push_back(single(object, 1));
    return true;
  }
  for (const NextHopGroupMember& member : object.group) {
    auto m = next_hops_.find(member.id);
    // Members are single objects; nested groups do not exist in the kernel.
    if (m == next_hops_.end() || !m->second.value.group.empty()) continue;
    if (m->second.value.blackhole) {
      out->kind = netlink::RouteKind::kReject;
      out->next_hops.clear();
      return true;
    }
    out->next_hops.push_back(single(m->second.value, member.weight));
  }
  return !out->next_hops.empty();
}

std::vector<netlink::Route> Fib::Routes(size_t* unresolved) const {
  std::vector<netlink::Route> routes;
  routes.reserve(routes_.size());
  size_t left_out = 0;
  for (const auto& [prefix, entry] : routes_) {
    netlink::Route route;
    if (Resolve(entry.value, &route)) {
      routes.push_back(std::move(route));
    } else {
      ++left_out;
    }
  }
  std::sort(routes.begin(), routes.end(),
            [](const netlink::Route& a, const netlink::Route& b) {
              return a.destination < b.destination;
            });
  if (unresolved != nullptr) *unresolved = left_out;
  return routes;
}

std::shared_ptr<const netlink::RouteTable> Fib::BuildTable(
    size_t* unresolved) const {
  return std::make_shared<const netlink::RouteTable>(
      netlink::RouteTable::Build(Routes(unresolved)));
}

}  // namespace anylb::routing::fpm
