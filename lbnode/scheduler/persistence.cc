#include "lbnode/scheduler/persistence.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "common/config/rules.h"
#include "common/status_macros.h"
#include "lbnode/scheduler/hash.h"

namespace anylb::scheduler {

absl::Status ValidatePersistence(uint32_t vip_port, absl::Duration timeout,
                                 int ipv4_prefix, int ipv6_prefix) {
  // One definition of IPVS's rules, shared with the controller's checks.
  return config::ValidatePersistence(vip_port, timeout, ipv4_prefix,
                                     ipv6_prefix);
}

absl::StatusOr<PersistencePolicy> PersistencePolicy::Create(
    uint32_t vip_port, absl::Duration timeout, int ipv4_prefix,
    int ipv6_prefix) {
  RETURN_IF_ERROR(
      ValidatePersistence(vip_port, timeout, ipv4_prefix, ipv6_prefix));
  if (timeout == absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "persistence timeout 0 means no persistence: give a positive "
        "timeout (e.g. 300s) to make a persistence policy");
  }
  PersistencePolicy policy;
  policy.timeout = timeout;
  policy.ipv4_prefix_length = ipv4_prefix == 0 ? 32 : ipv4_prefix;
  policy.ipv6_prefix_length = ipv6_prefix == 0 ? 128 : ipv6_prefix;
  return policy;
}

IpAddress PersistencePolicy::ClientNetwork(const IpAddress& client) const {
  return client.Masked(client.is_v4() ? ipv4_prefix_length
                                      : ipv6_prefix_length);
}

int PersistentBackendIndex(std::span<const SchedBackend> backends,
                           const Endpoint& endpoint, bool expire_quiescent) {
  const auto it = std::lower_bound(
      backends.begin(), backends.end(), endpoint,
      [](const SchedBackend& b, const Endpoint& e) { return b.endpoint < e; });
  if (it == backends.end() || it->endpoint != endpoint) return kNoBackend;
  if (!it->available) return kNoBackend;
  if (expire_quiescent && it->weight == 0) return kNoBackend;
  return static_cast<int>(it - backends.begin());
}

uint64_t PersistenceTable::KeyHasher::operator()(const Key& key,
                                                 uint64_t seed) const {
  uint8_t buf[21] = {};
  std::memcpy(buf, &key.service, sizeof(key.service));
  buf[4] = key.network.is_v4() ? 4 : 6;
  const auto bytes = key.network.bytes();
  std::memcpy(buf + 5, bytes.data(), bytes.size());
  return Hash64(buf, seed);
}

absl::StatusOr<std::unique_ptr<PersistenceTable>> PersistenceTable::Create(
    uint32_t capacity) {
  std::unique_ptr<PersistenceTable> table(new PersistenceTable());
  // A secret seed: clients choose their addresses, and must not be able to
  // aim them all at one probe chain.
  absl::BitGen gen;
  absl::Status status =
      table->map_.Init(capacity, absl::Uniform<uint64_t>(gen));
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("persistence table: ", status.message()));
  }
  return table;
}

std::optional<Endpoint> PersistenceTable::Lookup(
    uint32_t service, const PersistencePolicy& policy, const IpAddress& client,
    absl::Time now) {
  const uint32_t e = map_.Find(Key{service, policy.ClientNetwork(client)});
  if (e == Map::kNone) {
    ++stats_.misses;
    return std::nullopt;
  }
  Entry& entry = map_.value(e);
  if (now >= entry.expiry) {
    map_.Erase(e);
    ++stats_.expired;
    ++stats_.misses;
    return std::nullopt;
  }
  entry.expiry = now + policy.timeout;
  map_.Touch(e);
  ++stats_.hits;
  return entry.backend;
}

void PersistenceTable::Insert(uint32_t service, const PersistencePolicy& policy,
                              const IpAddress& client, const Endpoint& backend,
                              absl::Time now) {
  const Key key{service, policy.ClientNetwork(client)};
  uint32_t e = map_.Find(key);
  if (e != Map::kNone) {
    if (map_.value(e).backend != backend) ++stats_.updates;
    map_.Touch(e);
  } else {
    if (map_.full()) {
      // The oldest expired entry among the kReclaimScan least recently
      // used, else the least recently used.
      uint32_t victim = map_.Oldest();
      bool expired = false;
      for (uint32_t c = victim, i = 0; c != Map::kNone && i < kReclaimScan;
           c = map_.Newer(c), ++i) {
        if (now >= map_.value(c).expiry) {
          victim = c;
          expired = true;
          break;
        }
      }
      ++(expired ? stats_.expired : stats_.evictions);
      map_.Erase(victim);
    }
    e = map_.Insert(key);
    ++stats_.inserts;
  }
  Entry& entry = map_.value(e);
  entry.backend = backend;
  entry.expiry = now + policy.timeout;
}

bool PersistenceTable::Erase(uint32_t service, const PersistencePolicy& policy,
                             const IpAddress& client) {
  const uint32_t e = map_.Find(Key{service, policy.ClientNetwork(client)});
  if (e == Map::kNone) return false;
  map_.Erase(e);
  return true;
}

uint32_t PersistenceTable::EraseService(uint32_t service) {
  uint32_t erased = 0;
  map_.ForEach([&](uint32_t e) {
    if (map_.key(e).service == service) {
      map_.Erase(e);
      ++erased;
    }
  });
  return erased;
}

}  // namespace anylb::scheduler
