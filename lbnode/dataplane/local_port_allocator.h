// LocalPortAllocator: FULLNAT source ports on the node's local addresses,
// for one worker.
//
// A FULLNAT flow leaves the director from (local address, local port) and
// its replies come back to exactly that pair, so no two live flows of one
// protocol may share it: the pair is the reply's only identity. The
// allocator keeps, per (local address, protocol), a FIFO ring of the free
// ports of this worker. Allocate() takes the oldest free port (FIFO makes
// a released port wait as long as possible before reuse, which keeps a new
// flow off a backend socket still in TIME_WAIT for the old one); Release()
// appends it again. Both are O(1); with several local addresses of a family
// Allocate() goes round-robin over them, skipping empty rings (at most one
// pass over the addresses).
//
// Granularity: a port is unique per (local address, protocol), not per
// (local address, protocol, backend) as Linux's connect() would allow. The
// coarser rule gives up some capacity (ports per local address, not per
// backend) for a reply lookup that needs nothing but the reply's
// destination, and a release that needs no search.
//
// Worker partition: with worker_count W and worker_index i the allocator
// only hands out ports p with p % W == i, so a reply's destination port
// names the worker that owns its flow.
//
// Addresses change with snapshots (SetAddresses): an address that stays
// keeps its ring (live flows keep their ports); a new one gets a full ring;
// a removed one stops allocating but still accepts releases from its live
// flows. Pool indices never change, so a Lease stays valid across updates.
// The port range is fixed at Create().
//
// Ownership and threading: one allocator per worker, used on its thread.
// Create() and SetAddresses() allocate; Allocate() and Release() never
// allocate or lock, and raise no
// exception.

#ifndef ANYLB_LBNODE_DATAPLANE_LOCAL_PORT_ALLOCATOR_H_
#define ANYLB_LBNODE_DATAPLANE_LOCAL_PORT_ALLOCATOR_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/ip_address.h"

namespace anylb::dataplane {

// LocalPortLease is one allocated (local address, port): the address as a
// pool index (LocalPortAllocator::address()), stable across SetAddresses.
struct LocalPortLease {
  uint16_t pool = 0;
  uint16_t port = 0;
};

// LocalPortAllocator: see the file comment.
class LocalPortAllocator {
 public:
  // Create makes an allocator for ports [port_min, port_max] of worker
  // `worker_index` of `worker_count`. INVALID_ARGUMENT when the range is
  // empty or contains port 0, the worker index is out of range, or the
  // worker gets no port.
  static absl::StatusOr<std::unique_ptr<LocalPortAllocator>> Create(
      uint16_t port_min, uint16_t port_max, uint32_t worker_index,
      uint32_t worker_count);

  // SetAddresses makes `addresses` the ones Allocate() uses (see the file
  // comment). Control path.
  void SetAddresses(std::span<const IpAddress> addresses);

  // Allocate leases a free port of `protocol` (TCP or UDP; anything else
  // shares UDP's rings) on a local address of `family`; false when every
  // such address is out of ports (or there is none).
  bool Allocate(IpFamily family, uint8_t protocol, LocalPortLease* lease);

  // Release returns a leased port. A lease that is not out (released twice,
  // never allocated) is ignored and counted in double_releases().
  void Release(const LocalPortLease& lease, uint8_t protocol);

  // The address of a pool (a lease's `pool`).
  const IpAddress& address(uint16_t pool) const { return pools_[pool].address; }
  // Ports this worker may use on each address, per protocol.
  size_t ports_per_address() const { return ports_.size(); }
  // Free ports of `protocol` on pool `pool`.
  size_t available(uint16_t pool, uint8_t protocol) const;
  // Pools ever created (addresses seen), active or not.
  size_t pool_count() const { return pools_.size(); }
  uint64_t double_releases() const { return double_releases_; }

 private:
  struct Ring {
    std::vector<uint16_t> ports;  // Circular FIFO of free ports.
    std::vector<uint8_t> leased;  // By port slot: 1 while leased.
    uint32_t head = 0;
    uint32_t count = 0;
  };
  struct Pool {
    IpAddress address;
    bool active = false;
    Ring rings[2];  // TCP, UDP.
  };

  LocalPortAllocator(std::vector<uint16_t> ports, uint32_t worker_count);
  void InitRing(Ring& ring) const;
  // Slot of `port` in ports_ (ports are worker_index + k * worker_count).
  uint32_t SlotOf(uint16_t port) const {
    return (port - ports_[0]) / worker_count_;
  }

  const std::vector<uint16_t> ports_;  // This worker's ports, ascending.
  const uint32_t worker_count_;
  std::vector<Pool> pools_;
  // Active pool indices by family (0 IPv4, 1 IPv6) and the round-robin
  // cursor into each.
  std::vector<uint16_t> active_[2];
  uint32_t cursor_[2] = {0, 0};
  uint64_t double_releases_ = 0;
};

}  // namespace anylb::dataplane

#endif  // ANYLB_LBNODE_DATAPLANE_LOCAL_PORT_ALLOCATOR_H_
