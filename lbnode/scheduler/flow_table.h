// FlowTable: one worker's flows, so that established flows stay on their
// real server when the scheduler's view changes.

#ifndef ANYLB_LBNODE_SCHEDULER_FLOW_TABLE_H_
#define ANYLB_LBNODE_SCHEDULER_FLOW_TABLE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lbnode/scheduler/flow_key.h"
#include "lbnode/scheduler/flow_state.h"
#include "lbnode/scheduler/hash.h"

namespace anylb::scheduler {

// FlowValue is what the table remembers about a flow besides its state.
struct FlowValue {
  // Index of the real server in the service's backends (canonical order).
  uint32_t backend = 0;
  // The service (its index or id in the worker's snapshot).
  uint32_t service = 0;
  // Opaque to the table: NAT/FULLNAT data such as the local address and port.
  uint64_t user = 0;
};

// FlowClock is a point in time as the flow table keeps it: microseconds
// since the Unix epoch, clamped to what an entry's stamp holds (0 to
// 2^56 - 1; times before 1970 count as 1970). Converting an absl::Time costs
// about 20 instructions, so the packet path converts once per batch:
//   const FlowClock now = FlowClock::FromTime(absl::Now());
//   for (...) { e = table.Lookup(key, hash, now); ... table.Touch(e, now); }
// Every FlowTable method that takes an absl::Time has a FlowClock overload
// with the same behaviour (the absl::Time one converts and calls it).
struct FlowClock {
  static constexpr int64_t kMaxMicros = (int64_t{1} << 56) - 1;

  // FromTime is `time` to the microsecond (rounded down), clamped.
  static FlowClock FromTime(absl::Time time) {
    return FromMicros(absl::ToUnixMicros(time));
  }
  // FromMicros is `unix_micros` since the epoch, clamped.
  static constexpr FlowClock FromMicros(int64_t unix_micros) {
    return FlowClock{unix_micros < 0            ? 0
                     : unix_micros > kMaxMicros ? kMaxMicros
                                                : unix_micros};
  }
  absl::Time ToTime() const { return absl::FromUnixMicros(micros); }

  // Microseconds since the Unix epoch, 0..kMaxMicros.
  int64_t micros = 0;
};

// FlowEntry is one flow in a FlowTable: its key, value, state and when it
// was last seen. Exactly one 64-byte cache line.
//
// A FlowEntry* from the table stays valid until that flow leaves the table:
// Remove(), an expiry in Lookup() or ExpireSome(), or an eviction by
// Insert(); the removal callback is the last time it may be read. Entries
// never move while they live.
class alignas(64) FlowEntry {
 public:
  const FlowKey& key() const { return key_; }
  const FlowValue& value() const { return value_; }
  // The worker may change the value (e.g. fill in `user` after Insert). If it
  // changes `backend`, moving the active/inactive count is its own business.
  FlowValue& value() { return value_; }
  FlowState state() const { return static_cast<FlowState>(stamp_ & 0xff); }
  // last_seen is the `now` of the last Insert, Touch or SetState, to the
  // microsecond.
  absl::Time last_seen() const {
    return absl::FromUnixMicros(static_cast<int64_t>(stamp_ >> 8));
  }

 private:
  friend class FlowTable;

  FlowKey key_;
  FlowValue value_;
  // Microseconds since the Unix epoch << 8 | state: one word, so the entry
  // fits a cache line. 56 bits of microseconds last until the year 4253.
  uint64_t stamp_ = 0;
};

static_assert(sizeof(FlowEntry) == 64, "FlowEntry must be one cache line");

// RemovalReason is why a flow left the table.
enum class RemovalReason : uint8_t {
  kRemoved,  // Remove() was called
  kExpired,  // idle for its state's timeout (Lookup, ExpireSome, or reclaimed
             // by Insert when the table was full)
  kEvictedLru,  // table full: a confirmed insert evicted the least recently
                // used flow
  kEvictedUnconfirmedAtLimit,   // the unconfirmed class was at its limit: an
                                // unconfirmed insert evicted its LRU member
  kEvictedUnconfirmedWhenFull,  // table full: an unconfirmed insert evicted
                                // the least recently used unconfirmed flow
};

// FlowRemovedFn is told about every flow that leaves the table, exactly once,
// just before its entry is freed: `entry` still holds its key, value and last
// state (so the worker decrements its backend's `active` if
// IsActive(entry.state()), else `inactive`). It must not call into the table.
using FlowRemovedFn = void (*)(void* context, const FlowEntry& entry,
                               RemovalReason reason);

// FlowTimeouts are the idle timeouts per state: IPVS's defaults
// (tcp_timeouts in ip_vs_proto_tcp.c, udp_timeouts, icmp 60 s). ipvsadm
// --set tcp tcpfin udp sets tcp_established, tcp_fin_wait and udp.
struct FlowTimeouts {
  absl::Duration tcp_established = absl::Minutes(15);
  absl::Duration tcp_syn_sent = absl::Minutes(2);
  absl::Duration tcp_syn_recv = absl::Minutes(1);  // half-open
  absl::Duration tcp_fin_wait = absl::Minutes(2);
  absl::Duration tcp_time_wait = absl::Minutes(2);
  absl::Duration tcp_close = absl::Seconds(10);  // after RST
  absl::Duration tcp_close_wait = absl::Minutes(1);
  absl::Duration tcp_last_ack = absl::Seconds(30);
  absl::Duration udp = absl::Minutes(5);
  absl::Duration other = absl::Minutes(1);  // ICMP and other protocols

  // For is the timeout of `state` (kTcpNone and invalid states: tcp_close).
  absl::Duration For(FlowState state) const;
};

// FlowTableOptions configure a FlowTable; all of them are fixed at Create().
struct FlowTableOptions {
  // Maximum number of flows, 1..FlowTable::kMaxCapacity. Memory is 88 to
  // 104 bytes per flow (64 entry + 8 LRU links + 2 to 4 index slots), all
  // allocated and touched by Create(), on transparent huge pages where the
  // kernel allows.
  size_t capacity = size_t{1} << 20;
  // The share of `capacity` that unconfirmed flows (IsUnconfirmed: SYN_SENT,
  // SYN_RECV, CLOSE) may take, 1..100 percent (at least one flow).
  uint32_t max_unconfirmed_percent = 50;
  // Hash seed. Unset: a random one per table, so that nobody outside can
  // aim flows at one probe sequence (hash flooding). Set it in tests and
  // benchmarks. The table is local to one worker: nothing needs nodes to
  // agree on this hash.
  std::optional<uint64_t> seed;
  FlowTimeouts timeouts;
  // Told about every removed flow; may be null.
  FlowRemovedFn on_removed = nullptr;
  void* on_removed_context = nullptr;
};

// FlowTableCounters count what the table did, each removal and refusal by
// reason. Misses are lookups - hits.
struct FlowTableCounters {
  uint64_t lookups = 0;
  uint64_t hits = 0;
  uint64_t inserts = 0;          // flows created
  uint64_t already_present = 0;  // Insert found a live flow with the key
  uint64_t removals = 0;         // Remove()
  uint64_t expirations = 0;
  uint64_t evicted_lru = 0;
  uint64_t evicted_unconfirmed_at_limit = 0;
  uint64_t evicted_unconfirmed_when_full = 0;
  // An unconfirmed insert found the table full of confirmed flows, none of
  // them expired: the SYN-flood guard at work.
  uint64_t refused_no_room = 0;
  // Insert with kTcpNone or a value outside FlowState: a caller bug.
  uint64_t refused_invalid_state = 0;
};

// InsertStatus is what Insert() did.
enum class InsertStatus : uint8_t {
  kInserted,
  kAlreadyPresent,       // a live flow had the key; it is returned unchanged
  kRefusedNoRoom,        // see FlowTableCounters::refused_no_room
  kRefusedInvalidState,  // see FlowTableCounters::refused_invalid_state
};

// InsertResult: the entry (new, or the live one with the key; null when
// refused), and whether a flow was removed to make room and why (the
// removal callback has been told which one).
struct InsertResult {
  FlowEntry* entry = nullptr;
  InsertStatus status = InsertStatus::kInserted;
  std::optional<RemovalReason> made_room_by;

  bool inserted() const { return status == InsertStatus::kInserted; }
};

// FlowIndexStats describe the hash index (tests, benchmarks, debugging).
struct FlowIndexStats {
  size_t slots = 0;
  size_t occupied = 0;
  // Probe distance of an occupied slot from its key's home slot.
  size_t max_displacement = 0;
  double mean_displacement = 0;
};

// FlowTable maps a FlowKey to the flow's backend, service, opaque user word,
// TCP state and last-seen time, for one worker thread.
//
// Threading and ownership: one table per worker (share nothing). It is not
// thread-safe and needs no locks: the worker that created it is the only
// one to use and destroy it. Create() allocates and touches all memory;
// after that no method allocates, locks or throws, and every method's work
// is bounded (ExpireSome by its argument).
//
// Time: every call that needs the time takes `now` (tests pass a fake
// clock), as an absl::Time or, cheaper on the packet path, a FlowClock. `now`
// should not go backwards; if it does, flows simply look younger than they are.
//
// Counting protocol for the worker (IPVS's ActiveConn/InActConn):
//   Insert() inserted      ++active if IsActive(state), else ++inactive
//   SetState/OnTcpSegment  apply the returned ActivityChange
//   removal callback       --active if IsActive(entry.state()), else
//                          --inactive (Remove, expiry and evictions alike)
//
// Capacity policy (SYN-flood protection). Flows are either unconfirmed
// (IsUnconfirmed: SYN_SENT, SYN_RECV, CLOSE — what spoofed SYN, ACK or RST
// floods create) or confirmed (everything else: established and closing TCP,
// UDP, other). An insert that needs room takes it as follows; wherever a
// rule may take a flow, an expired one goes before a live one (and counts as
// an expiration, not an eviction):
//   1. An unconfirmed insert when the unconfirmed flows already number
//      max_unconfirmed_percent of the capacity takes an expired unconfirmed
//      flow, else evicts the least recently used unconfirmed flow
//      (evicted_unconfirmed_at_limit).
//   2. Otherwise an unconfirmed insert into a full table takes an expired
//      flow of any kind, else evicts the least recently used unconfirmed flow
//      (evicted_unconfirmed_when_full); when there is none, it is refused
//      (refused_no_room). It never evicts a live confirmed flow.
//   3. A confirmed insert into a full table takes an expired flow, else
//      evicts the least recently used flow of any kind (evicted_lru).
// So a flood of new unconfirmed flows churns only its own share of the table
// and established flows survive it. The limit applies to inserts: a
// confirmed flow reset into CLOSE may take the class over it for a while,
// and later unconfirmed inserts evict from the class until it is below.
//
// Layout. Entries live in one preallocated, cache-line-aligned array; free
// entries form a free list. Each stored state has its own intrusive doubly
// linked LRU list (by entry index, in a separate array), most recently seen
// first. Every flow in a list has the same timeout, so the list's tail is
// both its least recently used and its first to expire: ExpireSome() and the
// eviction rules above only ever look at list tails (at most one per state),
// which makes them O(1) per flow.
//
// The index is open addressing with linear probing over a power-of-two
// array of 8-byte slots {32-bit hash tag, entry index}, at most half full (8
// slots per cache line; a lookup usually reads one index line and one entry
// line). Deletion is by backward shift (Knuth, TAOCP vol. 3, §6.4, Algorithm
// R): the slots after a deleted one that would have probed past it move
// back, so the index is exactly what it would be had the deleted flow never
// been inserted. Tombstones would be cheaper to write but under constant flow
// churn they pile up until lookups of missing keys scan long runs and the
// table needs a rehash, an O(n) stall on the packet path; backward shift
// keeps probe lengths a function of the current load only.
class FlowTable {
 public:
  // kMaxCapacity bounds FlowTableOptions::capacity (about 5.9 GB of memory).
  static constexpr size_t kMaxCapacity = size_t{1} << 26;

  // Create builds a table for `options`: INVALID_ARGUMENT for a capacity,
  // percentage or timeout out of range (naming the value and the range),
  // RESOURCE_EXHAUSTED when the memory cannot be allocated.
  static absl::StatusOr<std::unique_ptr<FlowTable>> Create(
      const FlowTableOptions& options);

  FlowTable(const FlowTable&) = delete;
  FlowTable& operator=(const FlowTable&) = delete;
  ~FlowTable();

  // Hash is `key`'s hash in this table (FlowKeyHasher with the table's seed:
  // not stable across releases, see hash.h). Inline: ~25 instructions.
  // A batch hashes every packet's key once, prefetches, then looks up:
  //   for (i...) h[i] = table.Hash(key[i]), table.Prefetch(h[i]);
  //   for (i...) e[i] = table.Lookup(key[i], h[i], now);
  uint32_t Hash(const FlowKey& key) const {
    return static_cast<uint32_t>(hasher_(key));
  }

  // Prefetch starts loading the index line of a key with hash `hash`.
  void Prefetch(uint32_t hash) const;

  // Lookup returns the live flow with `key`, or null. A flow found idle
  // beyond its timeout is a miss: it is removed (kExpired) first. Lookup does
  // not refresh the flow: call Touch, SetState or OnTcpSegment.
  FlowEntry* Lookup(const FlowKey& key, FlowClock now) {
    return Lookup(key, Hash(key), now);
  }
  FlowEntry* Lookup(const FlowKey& key, absl::Time now) {
    return Lookup(key, Hash(key), FlowClock::FromTime(now));
  }
  // Lookup with `hash` = Hash(key), computed earlier (a wrong hash is a
  // miss).
  // Inline: the usual hit (the key in its home slot) costs no call.
  FlowEntry* Lookup(const FlowKey& key, uint32_t hash, FlowClock now) {
    ++counters_.lookups;
    const Slot home = slots_[hash & slot_mask_];
    if (home.tag == hash && home.entry != kNil) [[likely]] {
      FlowEntry& entry = entries_[home.entry];
      if (entry.key_ == key && !Expired(entry, now.micros)) [[likely]] {
        ++counters_.hits;
        return &entry;
      }
    }
    return LookupSlow(key, hash, now);
  }
  FlowEntry* Lookup(const FlowKey& key, uint32_t hash, absl::Time now) {
    return Lookup(key, hash, FlowClock::FromTime(now));
  }

  // Insert adds a flow in `state`, last seen `now`, making room by the
  // capacity policy above. A live flow with the same key is returned as
  // kAlreadyPresent, unchanged; an expired one is removed (kExpired) and
  // replaced. kTcpNone and invalid states are refused.
  InsertResult Insert(const FlowKey& key, const FlowValue& value,
                      FlowState state, FlowClock now);
  InsertResult Insert(const FlowKey& key, const FlowValue& value,
                      FlowState state, absl::Time now) {
    return Insert(key, value, state, FlowClock::FromTime(now));
  }

  // Touch marks the flow seen at `now`: its timeout restarts and it becomes
  // the most recently used.
  // Inline: the usual case (the flow is already its state's most recently
  // used) is one store.
  void Touch(FlowEntry* entry, FlowClock now) {
    const FlowEntry* const base = entries_.get();
    if (entry >= base && entry < base + capacity_) [[likely]] {
      const uint8_t state = static_cast<uint8_t>(entry->stamp_);
      if (state != static_cast<uint8_t>(FlowState::kTcpNone) &&
          state < kNumFlowStates &&
          lists_[state].head == static_cast<uint32_t>(entry - base))
          [[likely]] {
        entry->stamp_ = (static_cast<uint64_t>(now.micros) << 8) | state;
        return;
      }
    }
    TouchSlow(entry, now);
  }
  void Touch(FlowEntry* entry, absl::Time now) {
    Touch(entry, FlowClock::FromTime(now));
  }

  // SetState moves the flow to `state` and touches it; the result tells the
  // worker how its backend's counts change. An invalid `state` (or kTcpNone)
  // only touches the flow.
  ActivityChange SetState(FlowEntry* entry, FlowState state, FlowClock now);
  ActivityChange SetState(FlowEntry* entry, FlowState state, absl::Time now) {
    return SetState(entry, state, FlowClock::FromTime(now));
  }

  // OnTcpSegment is SetState(entry, NextTcpState(entry->state(), tcp_flags,
  // direction), now): what the worker calls for each TCP packet of a known
  // flow.
  ActivityChange OnTcpSegment(FlowEntry* entry, uint8_t tcp_flags,
                              TcpDirection direction, FlowClock now) {
    return SetState(entry, NextTcpState(entry->state(), tcp_flags, direction),
                    now);
  }
  ActivityChange OnTcpSegment(FlowEntry* entry, uint8_t tcp_flags,
                              TcpDirection direction, absl::Time now) {
    return OnTcpSegment(entry, tcp_flags, direction, FlowClock::FromTime(now));
  }

  // Remove removes the flow (the callback is told, kRemoved). `entry` must
  // come from this table; a pointer to an entry that is no longer live is
  // ignored.
  void Remove(FlowEntry* entry);

  // ExpireSome removes up to `max_entries` flows idle beyond their timeout
  // at `now` and returns how many it removed. The worker calls it between
  // batches; work is O(max_entries + number of states).
  size_t ExpireSome(FlowClock now, size_t max_entries);
  size_t ExpireSome(absl::Time now, size_t max_entries) {
    return ExpireSome(FlowClock::FromTime(now), max_entries);
  }

  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }
  // Unconfirmed flows (IsUnconfirmed) and the most that inserts allow.
  size_t unconfirmed_size() const { return unconfirmed_size_; }
  size_t unconfirmed_limit() const { return unconfirmed_limit_; }
  // How many flows are in `state`.
  size_t size_in_state(FlowState state) const;
  const FlowTableCounters& counters() const { return counters_; }
  uint64_t seed() const { return seed_; }
  const FlowTimeouts& timeouts() const { return timeouts_; }

  // IndexStats walks the whole index: O(capacity), for tests and debugging.
  FlowIndexStats IndexStats() const;

  // CheckConsistency verifies every internal invariant (index ↔ entries,
  // lists, counts, free list): O(capacity), for tests and debugging. INTERNAL
  // with the first violation found.
  absl::Status CheckConsistency() const;

 private:
  static constexpr uint32_t kNil = 0xffffffff;

  // Arrays are allocated by Create with aligned_alloc (2 MiB-aligned and
  // advised onto transparent huge pages when large) and freed with free().
  struct FreeDeleter {
    void operator()(void* p) const;
  };
  template <typename T>
  using Array = std::unique_ptr<T[], FreeDeleter>;

  struct Slot {
    uint32_t tag;    // low 32 bits of the key's hash; tag & mask = home slot
    uint32_t entry;  // entry index, kNil when the slot is empty
  };
  struct Links {
    uint32_t prev;  // towards the list's head (more recent)
    uint32_t next;  // towards its tail (less recent); the free list's link
  };
  struct List {
    uint32_t head = kNil;  // most recently seen
    uint32_t tail = kNil;  // least recently seen
    uint32_t size = 0;
  };
  // A flow a capacity rule may take, and whether it is expired.
  struct Victim {
    uint32_t index = kNil;
    bool expired = false;
  };

  FlowTable(const FlowTableOptions& options, uint64_t seed,
            Array<FlowEntry> entries, Array<Links> links, Array<Slot> slots,
            size_t slot_count);

  // FindSlot returns the slot holding `key`, or kNil.
  uint32_t FindSlot(const FlowKey& key, uint32_t tag) const;
  // FindSlotOfEntry returns the slot pointing at entry `index` (which is
  // live).
  uint32_t FindSlotOfEntry(uint32_t index) const;
  void EraseSlot(uint32_t slot);
  bool Expired(const FlowEntry& entry, int64_t now_us) const {
    const int s = static_cast<int>(entry.stamp_ & 0xff);
    return now_us - static_cast<int64_t>(entry.stamp_ >> 8) >= timeout_us_[s];
  }
  // LookupSlow is Lookup past its inline home-slot hit (not counted again).
  FlowEntry* LookupSlow(const FlowKey& key, uint32_t hash, FlowClock now);
  // TouchSlow is Touch when the flow must move to its list's head (or
  // `entry` is not live).
  void TouchSlow(FlowEntry* entry, FlowClock now);
  // RemoveAt tells the callback, then unlinks and frees the entry.
  void RemoveAt(uint32_t index, uint32_t slot, RemovalReason reason);
  void RemoveEntry(uint32_t index, RemovalReason reason);
  // PickVictim returns an expired list tail among the states in
  // `expired_mask` (the earliest deadline), else the least recently seen
  // tail among the states in `lru_mask`, else kNil.
  Victim PickVictim(uint32_t expired_mask, uint32_t lru_mask,
                    int64_t now_us) const;
  void PushFront(FlowState state, uint32_t index);
  void Unlink(FlowState state, uint32_t index);
  uint32_t IndexOf(const FlowEntry* entry) const;

  const size_t capacity_;
  const size_t unconfirmed_limit_;
  const uint64_t seed_;
  const FlowKeyHasher hasher_;
  const uint32_t slot_mask_;
  const FlowTimeouts timeouts_;
  const FlowRemovedFn on_removed_;
  void* const on_removed_context_;

  Array<FlowEntry> entries_;
  Array<Links> links_;
  Array<Slot> slots_;
  std::array<List, kNumFlowStates> lists_;
  std::array<int64_t, kNumFlowStates> timeout_us_;

  uint32_t free_head_ = kNil;
  size_t size_ = 0;
  size_t unconfirmed_size_ = 0;
  uint32_t sweep_cursor_ = 0;
  FlowTableCounters counters_;
};

}  // namespace anylb::scheduler

#endif  // ANYLB_LBNODE_SCHEDULER_FLOW_TABLE_H_
