// Persistence: client affinity, as `ipvsadm -A ... -p TIMEOUT -M NETMASK`.
//
// With persistence a new connection from a client network that connected
// recently goes to the real server the earlier one went to, bypassing the
// scheduler. IPVS keeps this in connection "templates" (ip_vs_sched_persist
// in net/netfilter/ipvs/ip_vs_core.c); PersistenceTable is their fixed-size
// equivalent for one worker.
//
// The lookup order for a new flow of a persistent service is:
//
//   auto endpoint = table.Lookup(service, policy, client, now);
//   int index = endpoint ? PersistentBackendIndex(backends, *endpoint) : -1;
//   if (index == kNoBackend) {
//     index = scheduler.Pick(flow, backends, now);
//     if (index != kNoBackend) {
//       table.Insert(service, policy, client, backends[index].endpoint, now);
//     }
//   }

#ifndef ANYLB_LBNODE_SCHEDULER_PERSISTENCE_H_
#define ANYLB_LBNODE_SCHEDULER_PERSISTENCE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/ip_address.h"
#include "lbnode/scheduler/backend.h"
#include "lbnode/scheduler/internal/lru_hash_map.h"

namespace anylb::scheduler {

// ValidatePersistence checks a service's persistence settings (lb.v1
// Service.port and Persistence): `timeout` >= 0 (0: no persistence);
// `vip_port` 0..65535, and 0 (all ports) only with persistence, as IPVS
// requires ("port zero only supported in persistent services");
// `ipv4_prefix` 0..32 and `ipv6_prefix` 0..128, where 0 means the full
// length (a single client), as in lb.v1. Errors are INVALID_ARGUMENT naming
// the value and the accepted range.
absl::Status ValidatePersistence(uint32_t vip_port, absl::Duration timeout,
                                 int ipv4_prefix, int ipv6_prefix);

// PersistencePolicy is one persistent service's settings, validated.
struct PersistencePolicy {
  // How long a client network's affinity lasts after its last new
  // connection (ipvsadm -p; IPVS's default is 300s).
  absl::Duration timeout = absl::Seconds(300);
  // Clients whose addresses agree on this many leading bits share a real
  // server (ipvsadm -M for IPv4; the IPv6 prefix length for IPv6).
  int ipv4_prefix_length = 32;
  int ipv6_prefix_length = 128;

  // Create validates the settings (ValidatePersistence; the timeout must be
  // positive here: a policy means persistence is on) and turns a 0 prefix
  // length into the full length.
  static absl::StatusOr<PersistencePolicy> Create(uint32_t vip_port,
                                                  absl::Duration timeout,
                                                  int ipv4_prefix,
                                                  int ipv6_prefix);

  // ClientNetwork is `client` masked to the prefix length of its family.
  IpAddress ClientNetwork(const IpAddress& client) const;
};

// PersistentBackendIndex is ip_vs_check_template for a remembered real
// server: its index in `backends` (canonical order: binary search) if it is
// still in the set and this node can reach it, else kNoBackend (schedule
// afresh and Insert the new choice). As in IPVS a quiesced (weight 0) or
// overloaded real server keeps its persistent clients, unless
// `expire_quiescent` (IPVS's expire_quiescent_template sysctl) and its
// weight is 0.
int PersistentBackendIndex(std::span<const SchedBackend> backends,
                           const Endpoint& endpoint,
                           bool expire_quiescent = false);

// PersistenceStats counts what a PersistenceTable did.
struct PersistenceStats {
  uint64_t hits = 0;       // Lookup found a live entry
  uint64_t misses = 0;     // Lookup found none (or an expired one)
  uint64_t inserts = 0;    // Insert added an entry
  uint64_t updates = 0;    // Insert gave an entry another real server
  uint64_t expired = 0;    // entries dropped at or after their expiry
  uint64_t evictions = 0;  // live entries dropped because the table was full
};

// PersistenceTable maps (service, client network) to the real server that
// network's connections go to, until the entry expires.
//
//   - Key: the service id and the client address masked to the service's
//     prefix length. In IPVS the template key is (protocol, client network,
//     virtual address, virtual port), where the virtual port is the
//     service's port — or 0 for a port-0 (all ports) service, so that all
//     the ports of a VIP share one real server per client network. The
//     service id stands for protocol, address and port, and makes a port-0
//     service's key independent of the connection's port in the same way.
//   - Value: the real server's Endpoint, not an index, so that a new
//     backend snapshot (indices shift) cannot misroute; see
//     PersistentBackendIndex.
//   - Expiry: an entry lives until `timeout` after it was inserted or last
//     found by Lookup: IPVS restarts a template's timer each time a new
//     connection uses it (__ip_vs_conn_put_timer). IPVS also keeps a
//     template while connections it created are open (ip_vs_conn_expire's
//     n_control check); here the flow table keeps those connections on
//     their real server anyway, so only new connections refresh an entry.
//   - Capacity: fixed at Create(), allocated once. An expired entry is
//     dropped when Lookup meets it or when room is needed; when the table
//     is full of live entries, the least recently used one is evicted and
//     counted (stats().evictions): its clients are scheduled afresh.
//
// Ownership and threading: one table per worker, used by that worker's
// thread only. Create() allocates; Lookup, Insert and Erase never allocate,
// lock or throw.
class PersistenceTable {
 public:
  // Create makes a table of `capacity` entries, 1..2^24.
  static absl::StatusOr<std::unique_ptr<PersistenceTable>> Create(
      uint32_t capacity);

  // Lookup returns the real server of `client`'s network for `service`
  // while its entry is live (now < expiry), and extends the entry to now +
  // policy.timeout. An expired entry is dropped and nullopt returned.
  std::optional<Endpoint> Lookup(uint32_t service,
                                 const PersistencePolicy& policy,
                                 const IpAddress& client, absl::Time now);

  // Insert makes `backend` the real server of `client`'s network for
  // `service` until now + policy.timeout, replacing any entry (a template
  // whose real server went away). Room is made as described above.
  void Insert(uint32_t service, const PersistencePolicy& policy,
              const IpAddress& client, const Endpoint& backend, absl::Time now);

  // Erase drops the entry of `client`'s network for `service`; returns
  // whether there was one.
  bool Erase(uint32_t service, const PersistencePolicy& policy,
             const IpAddress& client);

  // EraseService drops every entry of `service` (the service was removed
  // or its persistence changed). Control path: O(size).
  uint32_t EraseService(uint32_t service);

  uint32_t size() const { return map_.size(); }
  uint32_t capacity() const { return map_.capacity(); }
  const PersistenceStats& stats() const { return stats_; }

 private:
  struct Key {
    uint32_t service = 0;
    IpAddress network;
    friend bool operator==(const Key&, const Key&) = default;
  };
  struct Entry {
    Endpoint backend;
    absl::Time expiry;
  };
  struct KeyHasher {
    uint64_t operator()(const Key& key, uint64_t seed) const;
  };
  using Map = internal::LruHashMap<Key, Entry, KeyHasher>;

  // kReclaimScan: how many of the least recently used entries Insert looks
  // at for an expired one before evicting a live one. Entries of services
  // with different timeouts expire out of recency order.
  static constexpr int kReclaimScan = 8;

  PersistenceTable() = default;

  Map map_;
  PersistenceStats stats_;
};

}  // namespace anylb::scheduler

#endif  // ANYLB_LBNODE_SCHEDULER_PERSISTENCE_H_
