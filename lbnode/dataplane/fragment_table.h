// FragmentTable: how one worker rewrites the later fragments of a NAT or
// FULLNAT datagram whose first fragment it translated.
//
// A non-first fragment carries no transport header, so it cannot be matched
// to a flow by its ports. The engine translates the first fragment (offset 0,
// ports present) like an unfragmented packet and records here, under the
// datagram's identity as it arrived (source, destination, protocol, IPv4
// identification / IPv6 fragment identification; RFC 791 §3.2, RFC 8200
// §4.5), the addresses it gave it. Later fragments of that datagram find
// the record and get the same addresses. The director never reassembles
// (IPVS does, through the kernel's defragmentation; we do not): a later
// fragment that arrives before its first, or after the record is gone, is
// dropped and counted (fragment_unmatched).
//
// Ownership and threading (share nothing): one table per Engine, used only
// by its worker thread. Create() allocates all memory; Insert and Lookup
// never allocate or lock and raise no exceptions; their work is bounded (one
// bucket).
//
// Layout: a power-of-two array of buckets of kWays entries each (set
// associative, like a CPU cache). A key maps to one bucket by a seeded
// hash. A record lives `lifetime` from its Insert (a first fragment seen
// again re-inserts it). Insert into a full bucket takes an expired entry,
// else evicts the one that expires first (the oldest: every record has the
// same lifetime), counted in `evictions`. So the table holds at most
// `capacity` datagrams, and a flood of first fragments can only push out
// other records, never grow memory.

#ifndef ANYLB_LBNODE_DATAPLANE_FRAGMENT_TABLE_H_
#define ANYLB_LBNODE_DATAPLANE_FRAGMENT_TABLE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <type_traits>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/ip_address.h"

namespace anylb::dataplane {

// FragmentKey is a fragmented datagram's identity as it reaches the
// director. Addresses as in FlowKey (IPv4 in the first 4 bytes, the rest
// zero). Padding-free: compared with memcmp, hashed by its bytes.
struct FragmentKey {
  std::array<uint8_t, 16> src{};
  std::array<uint8_t, 16> dst{};
  uint32_t id = 0;  // IPv4 identification (16 bits) or IPv6 (32 bits).
  uint8_t protocol = 0;
  IpFamily family = IpFamily::kV4;
  uint8_t pad[2] = {0, 0};

  friend bool operator==(const FragmentKey& a, const FragmentKey& b) {
    return std::memcmp(&a, &b, sizeof(FragmentKey)) == 0;
  }
};
static_assert(sizeof(FragmentKey) == 40, "FragmentKey must stay padding-free");
static_assert(std::is_trivially_copyable_v<FragmentKey>);

// FragmentRewrite is what the later fragments of a datagram get: the source
// and destination addresses the first fragment left with (same family as
// the key; the next hop is the new destination), and what the engine counts
// them on.
struct FragmentRewrite {
  std::array<uint8_t, 16> src{};
  std::array<uint8_t, 16> dst{};
  uint32_t service = 0;  // Snapshot index of the flow's service.
  uint32_t backend = 0;  // Backend index in it.
  uint32_t epoch = 0;    // The engine's snapshot epoch at Insert.
  bool reply = false;    // Server → client (NAT/FULLNAT reply direction).
};

// FragmentTableOptions are fixed at Create().
struct FragmentTableOptions {
  // Datagrams remembered at once: 1..kMaxCapacity, rounded up to a power of
  // two and at least kWays.
  size_t capacity = 1024;
  // How long a first fragment's record serves its later fragments (from the
  // first fragment; not refreshed by the later ones): 1 ms..60 s. Fragments
  // of one datagram normally arrive back to back; Linux keeps an incomplete
  // datagram 30 s (ipfrag_time), which is for reassembly, not for us.
  absl::Duration lifetime = absl::Seconds(3);
  // Hash seed; unset: random per table (see FlowTableOptions::seed).
  std::optional<uint64_t> seed;
};

// FragmentTableCounters: what the table did.
struct FragmentTableCounters {
  uint64_t inserts = 0;    // First fragments recorded (or re-recorded).
  uint64_t hits = 0;       // Lookups that found a live record.
  uint64_t misses = 0;     // Lookups that found none (expired included).
  uint64_t expired = 0;    // ... of which the record was there but expired.
  uint64_t evictions = 0;  // Live records pushed out by an Insert.
};

// FragmentTable: see the file comment.
class FragmentTable {
 public:
  static constexpr size_t kWays = 4;
  static constexpr size_t kMaxCapacity = size_t{1} << 20;

  // Create builds a table: INVALID_ARGUMENT naming the option and its range
  // for a capacity or lifetime out of range.
  static absl::StatusOr<std::unique_ptr<FragmentTable>> Create(
      const FragmentTableOptions& options);

  FragmentTable(const FragmentTable&) = delete;
  FragmentTable& operator=(const FragmentTable&) = delete;

  // Insert records `rewrite` for `key` at `now_us` (microseconds since the
  // Unix epoch), replacing any record of the same key.
  void Insert(const FragmentKey& key, const FragmentRewrite& rewrite,
              int64_t now_us);

  // Lookup returns the live record of `key` at `now_us`, or null. The
  // pointer is valid until the next Insert.
  const FragmentRewrite* Lookup(const FragmentKey& key, int64_t now_us);

  // Live records at `now_us`: O(capacity), for tests.
  size_t LiveCount(int64_t now_us) const;

  size_t capacity() const { return buckets_.size() * kWays; }
  absl::Duration lifetime() const { return absl::Microseconds(lifetime_us_); }
  const FragmentTableCounters& counters() const { return counters_; }

 private:
  struct Entry {
    FragmentKey key;
    FragmentRewrite rewrite;
    int64_t expires_us = 0;  // 0: empty.
  };
  struct alignas(64) Bucket {
    std::array<Entry, kWays> ways;
  };

  FragmentTable(size_t buckets, int64_t lifetime_us, uint64_t seed);
  Bucket& BucketOf(const FragmentKey& key);

  std::unique_ptr<Bucket[]> buckets_storage_;
  std::span<Bucket> buckets_;
  const int64_t lifetime_us_;
  const uint64_t seed_;
  FragmentTableCounters counters_;
};

}  // namespace anylb::dataplane

#endif  // ANYLB_LBNODE_DATAPLANE_FRAGMENT_TABLE_H_
