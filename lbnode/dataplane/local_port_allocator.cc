#include "lbnode/dataplane/local_port_allocator.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace anylb::dataplane {
namespace {

int FamilyIndex(IpFamily family) { return family == IpFamily::kV4 ? 0 : 1; }
int ProtocolIndex(uint8_t protocol) { return protocol == 6 ? 0 : 1; }

}  // namespace

absl::StatusOr<std::unique_ptr<LocalPortAllocator>> LocalPortAllocator::Create(
    uint16_t port_min, uint16_t port_max, uint32_t worker_index,
    uint32_t worker_count) {
  if (port_min == 0 || port_min > port_max) {
    return absl::InvalidArgumentError(
        absl::StrCat("local port range [", port_min, ", ", port_max,
                     "]: need 1 <= local_port_min <= local_port_max"));
  }
  if (worker_count == 0 || worker_index >= worker_count) {
    return absl::InvalidArgumentError(
        absl::StrCat("worker_index ", worker_index, " not below worker_count ",
                     worker_count));
  }
  std::vector<uint16_t> ports;
  for (uint32_t p = port_min; p <= port_max; ++p) {
    if (p % worker_count == worker_index) {
      ports.push_back(static_cast<uint16_t>(p));
    }
  }
  if (ports.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "local port range [", port_min, ", ", port_max,
        "] has no port for "
        "worker ",
        worker_index, " of ", worker_count,
        " (ports p with p % worker_count == worker_index): widen the range"));
  }
  return std::unique_ptr<LocalPortAllocator>(
      new LocalPortAllocator(std::move(ports), worker_count));
}

LocalPortAllocator::LocalPortAllocator(std::vector<uint16_t> ports,
                                       uint32_t worker_count)
    : ports_(std::move(ports)), worker_count_(worker_count) {}

void LocalPortAllocator::InitRing(Ring& ring) const {
  ring.ports = ports_;
  ring.leased.assign(ports_.size(), 0);
  ring.head = 0;
  ring.count = static_cast<uint32_t>(ports_.size());
}

void LocalPortAllocator::SetAddresses(std::span<const IpAddress> addresses) {
  for (Pool& pool : pools_) pool.active = false;
  for (const IpAddress& a : addresses) {
    bool found = false;
    for (Pool& pool : pools_) {
      if (pool.address == a) {
        pool.active = true;
        found = true;
        break;
      }
    }
    if (!found) {
      Pool& pool = pools_.emplace_back();
      pool.address = a;
      pool.active = true;
      InitRing(pool.rings[0]);
      InitRing(pool.rings[1]);
    }
  }
  for (auto& list : active_) list.clear();
  for (size_t i = 0; i < pools_.size(); ++i) {
    if (pools_[i].active) {
      active_[FamilyIndex(pools_[i].address.family())].push_back(
          static_cast<uint16_t>(i));
    }
  }
  cursor_[0] = cursor_[1] = 0;
}

bool LocalPortAllocator::Allocate(IpFamily family, uint8_t protocol,
                                  LocalPortLease* lease) {
  const int f = FamilyIndex(family);
  const std::vector<uint16_t>& active = active_[f];
  const size_t n = active.size();
  for (size_t tries = 0; tries < n; ++tries) {
    uint32_t& cursor = cursor_[f];
    if (cursor >= n) cursor = 0;
    const uint16_t pool = active[cursor++];
    Ring& ring = pools_[pool].rings[ProtocolIndex(protocol)];
    if (ring.count == 0) continue;
    const uint16_t port = ring.ports[ring.head];
    ring.head = ring.head + 1 == ring.ports.size() ? 0 : ring.head + 1;
    --ring.count;
    ring.leased[SlotOf(port)] = 1;
    lease->pool = pool;
    lease->port = port;
    return true;
  }
  return false;
}

void LocalPortAllocator::Release(const LocalPortLease& lease,
                                 uint8_t protocol) {
  if (lease.pool >= pools_.size() || lease.port < ports_.front() ||
      lease.port > ports_.back() ||
      (lease.port - ports_.front()) % worker_count_ != 0) {
    ++double_releases_;
    return;
  }
  Ring& ring = pools_[lease.pool].rings[ProtocolIndex(protocol)];
  const uint32_t slot = SlotOf(lease.port);
  if (ring.leased[slot] == 0) {
    ++double_releases_;
    return;
  }
  ring.leased[slot] = 0;
  uint32_t tail = ring.head + ring.count;
  if (tail >= ring.ports.size()) {
    tail -= static_cast<uint32_t>(ring.ports.size());
  }
  ring.ports[tail] = lease.port;
  ++ring.count;
}

size_t LocalPortAllocator::available(uint16_t pool, uint8_t protocol) const {
  return pools_.at(pool).rings[ProtocolIndex(protocol)].count;
}

}  // namespace anylb::dataplane
