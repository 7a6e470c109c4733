#include "lbnode/scheduler/flow_table.h"

#include <sys/mman.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <memory>
#include <new>
#include <string>
#include <utility>

#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "lbnode/scheduler/hash.h"

namespace anylb::scheduler {
namespace {

// The state byte of a free entry's stamp: no FlowState, so a stale pointer
// to a freed entry is recognised.
constexpr uint8_t kFreeState = 0xff;
constexpr uint64_t kFreeStamp = kFreeState;

constexpr absl::Duration kMaxTimeout = absl::Hours(24 * 30);

// Bit masks over FlowState values for PickVictim.
constexpr uint32_t Bit(FlowState state) {
  return uint32_t{1} << static_cast<int>(state);
}
constexpr uint32_t kAllStates = (uint32_t{1} << kNumFlowStates) - 1;
constexpr uint32_t kUnconfirmedStates = Bit(FlowState::kTcpSynSent) |
                                        Bit(FlowState::kTcpSynRecv) |
                                        Bit(FlowState::kTcpClose);

constexpr uint32_t UnconfirmedMaskFromPredicate() {
  uint32_t mask = 0;
  for (int s = 0; s < kNumFlowStates; ++s) {
    if (IsUnconfirmed(static_cast<FlowState>(s)) &&
        static_cast<FlowState>(s) != FlowState::kTcpNone) {
      mask |= uint32_t{1} << s;
    }
  }
  return mask;
}
static_assert(kUnconfirmedStates == UnconfirmedMaskFromPredicate(),
              "kUnconfirmedStates must match IsUnconfirmed()");

// AllocateRaw returns uninitialised room for `count` T, or null. Arrays of
// 2 MiB or more are 2 MiB-aligned and advised onto transparent huge pages: a
// worker's table is tens of MB visited at random, and with 4 KiB pages
// nearly every lookup would also miss the TLB. The advice may be ignored
// (THP disabled); that only costs speed.
template <typename T>
void* AllocateRaw(size_t count) {
  constexpr size_t kHugePage = size_t{2} << 20;
  const size_t bytes = count * sizeof(T);
  const size_t align =
      bytes >= kHugePage ? kHugePage : std::max<size_t>(alignof(T), 64);
  const size_t rounded = (bytes + align - 1) / align * align;
  void* p = std::aligned_alloc(align, rounded);
  if (p != nullptr && align == kHugePage) madvise(p, rounded, MADV_HUGEPAGE);
  return p;
}

uint64_t Stamp(int64_t now_us, FlowState state) {
  return (static_cast<uint64_t>(now_us) << 8) | static_cast<uint8_t>(state);
}

int64_t StampMicros(uint64_t stamp) { return static_cast<int64_t>(stamp >> 8); }

// Name is FlowStateName as a std::string: Debian's absl::StrCat does not take
// std::string_view.
std::string Name(FlowState state) { return std::string(FlowStateName(state)); }

bool IsStorable(FlowState state) {
  return IsValidFlowState(state) && state != FlowState::kTcpNone;
}

absl::Status CheckTimeout(const char* name, absl::Duration timeout) {
  if (timeout < absl::Microseconds(1) || timeout > kMaxTimeout) {
    return absl::InvalidArgumentError(absl::StrCat(
        "flow timeout ", name, " = ", absl::FormatDuration(timeout),
        " is out of range: it must be between 1us and ",
        absl::FormatDuration(kMaxTimeout)));
  }
  return absl::OkStatus();
}

absl::Status CheckOptions(const FlowTableOptions& options) {
  if (options.capacity == 0) {
    return absl::InvalidArgumentError(
        "flow table capacity 0 is invalid: it must be at least 1 (a worker's "
        "table is typically 2^20 flows)");
  }
  if (options.capacity > FlowTable::kMaxCapacity) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "flow table capacity %d exceeds the maximum %d (88 to 104 bytes per "
        "flow); lower it or spread the flows over more workers",
        options.capacity, FlowTable::kMaxCapacity));
  }
  if (options.max_unconfirmed_percent == 0 ||
      options.max_unconfirmed_percent > 100) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_unconfirmed_percent ", options.max_unconfirmed_percent,
        " is out of range: it must be 1..100 (50 keeps half the table for "
        "established flows under a SYN flood)"));
  }
  const FlowTimeouts& t = options.timeouts;
  const std::pair<const char*, absl::Duration> timeouts[] = {
      {"tcp_established", t.tcp_established},
      {"tcp_syn_sent", t.tcp_syn_sent},
      {"tcp_syn_recv", t.tcp_syn_recv},
      {"tcp_fin_wait", t.tcp_fin_wait},
      {"tcp_time_wait", t.tcp_time_wait},
      {"tcp_close", t.tcp_close},
      {"tcp_close_wait", t.tcp_close_wait},
      {"tcp_last_ack", t.tcp_last_ack},
      {"udp", t.udp},
      {"other", t.other},
  };
  for (const auto& [name, timeout] : timeouts) {
    RETURN_IF_ERROR(CheckTimeout(name, timeout));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Duration FlowTimeouts::For(FlowState state) const {
  switch (state) {
    case FlowState::kTcpEstablished:
      return tcp_established;
    case FlowState::kTcpSynSent:
      return tcp_syn_sent;
    case FlowState::kTcpSynRecv:
      return tcp_syn_recv;
    case FlowState::kTcpFinWait:
      return tcp_fin_wait;
    case FlowState::kTcpTimeWait:
      return tcp_time_wait;
    case FlowState::kTcpCloseWait:
      return tcp_close_wait;
    case FlowState::kTcpLastAck:
      return tcp_last_ack;
    case FlowState::kUdp:
      return udp;
    case FlowState::kOther:
      return other;
    case FlowState::kTcpNone:
    case FlowState::kTcpClose:
      break;
  }
  return tcp_close;
}

absl::StatusOr<std::unique_ptr<FlowTable>> FlowTable::Create(
    const FlowTableOptions& options) {
  RETURN_IF_ERROR(CheckOptions(options));

  // At most half full, so probe sequences stay short and always end.
  const size_t slot_count =
      std::bit_ceil(std::max<size_t>(2, 2 * options.capacity));
  const size_t bytes = options.capacity * (sizeof(FlowEntry) + sizeof(Links)) +
                       slot_count * sizeof(Slot);
  Array<FlowEntry> entries(
      static_cast<FlowEntry*>(AllocateRaw<FlowEntry>(options.capacity)));
  Array<Links> links(static_cast<Links*>(AllocateRaw<Links>(options.capacity)));
  Array<Slot> slots(static_cast<Slot*>(AllocateRaw<Slot>(slot_count)));
  if (entries == nullptr || links == nullptr || slots == nullptr) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "cannot allocate %d bytes for a flow table of capacity %d; lower the "
        "capacity",
        bytes, options.capacity));
  }
  uint64_t seed;
  if (options.seed.has_value()) {
    seed = *options.seed;
  } else {
    absl::BitGen gen;
    seed = absl::Uniform<uint64_t>(gen);
  }
  return std::unique_ptr<FlowTable>(
      new FlowTable(options, seed, std::move(entries), std::move(links),
                    std::move(slots), slot_count));
}

FlowTable::FlowTable(const FlowTableOptions& options, uint64_t seed,
                     Array<FlowEntry> entries, Array<Links> links,
                     Array<Slot> slots, size_t slot_count)
    : capacity_(options.capacity),
      unconfirmed_limit_(std::max<size_t>(
          1, options.capacity * options.max_unconfirmed_percent / 100)),
      seed_(seed),
      hasher_(seed),
      slot_mask_(static_cast<uint32_t>(slot_count - 1)),
      timeouts_(options.timeouts),
      on_removed_(options.on_removed),
      on_removed_context_(options.on_removed_context),
      entries_(std::move(entries)),
      links_(std::move(links)),
      slots_(std::move(slots)) {
  // Writing every entry, link and slot now also faults in every page, so
  // the packet path never takes a page fault on first use.
  for (size_t i = 0; i < capacity_; ++i) {
    new (&entries_[i]) FlowEntry();
    entries_[i].stamp_ = kFreeStamp;
    links_[i].prev = kNil;
    links_[i].next = i + 1 < capacity_ ? static_cast<uint32_t>(i + 1) : kNil;
  }
  free_head_ = 0;
  for (size_t i = 0; i < slot_count; ++i) slots_[i] = Slot{0, kNil};
  for (int s = 0; s < kNumFlowStates; ++s) {
    timeout_us_[s] = std::max<int64_t>(
        1, absl::ToInt64Microseconds(timeouts_.For(static_cast<FlowState>(s))));
  }
}

FlowTable::~FlowTable() = default;

void FlowTable::FreeDeleter::operator()(void* p) const { std::free(p); }

void FlowTable::Prefetch(uint32_t hash) const {
  __builtin_prefetch(&slots_[hash & slot_mask_]);
}

uint32_t FlowTable::FindSlot(const FlowKey& key, uint32_t tag) const {
  for (uint32_t i = tag & slot_mask_;; i = (i + 1) & slot_mask_) {
    const Slot& slot = slots_[i];
    if (slot.entry == kNil) return kNil;
    if (slot.tag == tag && entries_[slot.entry].key_ == key) return i;
  }
}

uint32_t FlowTable::FindSlotOfEntry(uint32_t index) const {
  for (uint32_t i = Hash(entries_[index].key_) & slot_mask_;;
       i = (i + 1) & slot_mask_) {
    if (slots_[i].entry == index) return i;
    if (slots_[i].entry == kNil) return kNil;  // not reached for live entries
  }
}

void FlowTable::EraseSlot(uint32_t slot) {
  // Backward shift (Knuth's Algorithm R): walk the run after the hole; a
  // slot whose home is not cyclically within (hole, j] would be unreachable
  // past an empty hole, so it moves into the hole, which moves to j.
  uint32_t hole = slot;
  for (uint32_t j = (slot + 1) & slot_mask_; slots_[j].entry != kNil;
       j = (j + 1) & slot_mask_) {
    const uint32_t home = slots_[j].tag & slot_mask_;
    if (((j - home) & slot_mask_) >= ((j - hole) & slot_mask_)) {
      slots_[hole] = slots_[j];
      hole = j;
    }
  }
  slots_[hole].entry = kNil;
}

void FlowTable::PushFront(FlowState state, uint32_t index) {
  List& list = lists_[static_cast<int>(state)];
  links_[index].prev = kNil;
  links_[index].next = list.head;
  if (list.head != kNil) {
    links_[list.head].prev = index;
  } else {
    list.tail = index;
  }
  list.head = index;
  ++list.size;
  if (IsUnconfirmed(state)) ++unconfirmed_size_;
}

void FlowTable::Unlink(FlowState state, uint32_t index) {
  List& list = lists_[static_cast<int>(state)];
  const Links links = links_[index];
  if (links.prev != kNil) {
    links_[links.prev].next = links.next;
  } else {
    list.head = links.next;
  }
  if (links.next != kNil) {
    links_[links.next].prev = links.prev;
  } else {
    list.tail = links.prev;
  }
  --list.size;
  if (IsUnconfirmed(state)) --unconfirmed_size_;
}

uint32_t FlowTable::IndexOf(const FlowEntry* entry) const {
  const FlowEntry* base = entries_.get();
  if (entry < base || entry >= base + capacity_) return kNil;
  const uint32_t index = static_cast<uint32_t>(entry - base);
  if (!IsStorable(entries_[index].state())) return kNil;  // free
  return index;
}

void FlowTable::RemoveAt(uint32_t index, uint32_t slot, RemovalReason reason) {
  FlowEntry& entry = entries_[index];
  switch (reason) {
    case RemovalReason::kRemoved:
      ++counters_.removals;
      break;
    case RemovalReason::kExpired:
      ++counters_.expirations;
      break;
    case RemovalReason::kEvictedLru:
      ++counters_.evicted_lru;
      break;
    case RemovalReason::kEvictedUnconfirmedAtLimit:
      ++counters_.evicted_unconfirmed_at_limit;
      break;
    case RemovalReason::kEvictedUnconfirmedWhenFull:
      ++counters_.evicted_unconfirmed_when_full;
      break;
  }
  if (on_removed_ != nullptr) on_removed_(on_removed_context_, entry, reason);
  EraseSlot(slot);
  Unlink(entry.state(), index);
  entry.stamp_ = kFreeStamp;
  links_[index].next = free_head_;
  free_head_ = index;
  --size_;
}

void FlowTable::RemoveEntry(uint32_t index, RemovalReason reason) {
  RemoveAt(index, FindSlotOfEntry(index), reason);
}

FlowTable::Victim FlowTable::PickVictim(uint32_t expired_mask,
                                        uint32_t lru_mask,
                                        int64_t now_us) const {
  Victim expired{kNil, true};
  int64_t earliest_deadline = std::numeric_limits<int64_t>::max();
  Victim lru{kNil, false};
  int64_t oldest_seen = std::numeric_limits<int64_t>::max();
  for (int s = 0; s < kNumFlowStates; ++s) {
    const uint32_t tail = lists_[s].tail;
    if (tail == kNil) continue;
    const int64_t seen = StampMicros(entries_[tail].stamp_);
    const int64_t deadline = seen + timeout_us_[s];
    if (((expired_mask >> s) & 1) != 0 && now_us >= deadline &&
        deadline < earliest_deadline) {
      earliest_deadline = deadline;
      expired.index = tail;
    }
    if (((lru_mask >> s) & 1) != 0 && seen < oldest_seen) {
      oldest_seen = seen;
      lru.index = tail;
    }
  }
  return expired.index != kNil ? expired : lru;
}

FlowEntry* FlowTable::LookupSlow(const FlowKey& key, uint32_t hash,
                                 FlowClock now) {
  const uint32_t slot = FindSlot(key, hash);
  if (slot == kNil) return nullptr;
  const uint32_t index = slots_[slot].entry;
  FlowEntry& entry = entries_[index];
  if (Expired(entry, now.micros)) {
    RemoveAt(index, slot, RemovalReason::kExpired);
    return nullptr;
  }
  ++counters_.hits;
  return &entry;
}

InsertResult FlowTable::Insert(const FlowKey& key, const FlowValue& value,
                               FlowState state, FlowClock now) {
  InsertResult result;
  if (!IsStorable(state)) {
    ++counters_.refused_invalid_state;
    result.status = InsertStatus::kRefusedInvalidState;
    return result;
  }
  const int64_t now_us = now.micros;
  const uint32_t tag = Hash(key);
  if (const uint32_t slot = FindSlot(key, tag); slot != kNil) {
    const uint32_t index = slots_[slot].entry;
    if (!Expired(entries_[index], now_us)) {
      ++counters_.already_present;
      result.entry = &entries_[index];
      result.status = InsertStatus::kAlreadyPresent;
      return result;
    }
    RemoveAt(index, slot, RemovalReason::kExpired);
    result.made_room_by = RemovalReason::kExpired;
  }

  // The capacity policy (flow_table.h, rules 1-3).
  const bool unconfirmed = IsUnconfirmed(state);
  bool need_room = true;
  Victim victim;
  RemovalReason evict_reason = RemovalReason::kEvictedLru;
  if (unconfirmed && unconfirmed_size_ >= unconfirmed_limit_) {
    victim = PickVictim(kUnconfirmedStates, kUnconfirmedStates, now_us);
    evict_reason = RemovalReason::kEvictedUnconfirmedAtLimit;
  } else if (size_ == capacity_ && unconfirmed) {
    victim = PickVictim(kAllStates, kUnconfirmedStates, now_us);
    evict_reason = RemovalReason::kEvictedUnconfirmedWhenFull;
  } else if (size_ == capacity_) {
    victim = PickVictim(kAllStates, kAllStates, now_us);
  } else {
    need_room = false;
  }
  if (need_room) {
    if (victim.index == kNil) {
      ++counters_.refused_no_room;
      result.status = InsertStatus::kRefusedNoRoom;
      return result;
    }
    const RemovalReason reason =
        victim.expired ? RemovalReason::kExpired : evict_reason;
    RemoveEntry(victim.index, reason);
    result.made_room_by = reason;
  }

  const uint32_t index = free_head_;
  free_head_ = links_[index].next;
  FlowEntry& entry = entries_[index];
  entry.key_ = key;
  entry.value_ = value;
  entry.stamp_ = Stamp(now_us, state);
  PushFront(state, index);
  uint32_t slot = tag & slot_mask_;
  while (slots_[slot].entry != kNil) slot = (slot + 1) & slot_mask_;
  slots_[slot] = Slot{tag, index};
  ++size_;
  ++counters_.inserts;
  result.entry = &entry;
  result.status = InsertStatus::kInserted;
  return result;
}

void FlowTable::TouchSlow(FlowEntry* entry, FlowClock now) {
  const uint32_t index = IndexOf(entry);
  if (index == kNil) return;
  const FlowState state = entry->state();
  entry->stamp_ = Stamp(now.micros, state);
  if (lists_[static_cast<int>(state)].head != index) {
    Unlink(state, index);
    PushFront(state, index);
  }
}

ActivityChange FlowTable::SetState(FlowEntry* entry, FlowState state,
                                   FlowClock now) {
  const uint32_t index = IndexOf(entry);
  if (index == kNil) return ActivityChange::kNone;
  const FlowState old = entry->state();
  if (state == old || !IsStorable(state)) {
    Touch(entry, now);
    return ActivityChange::kNone;
  }
  Unlink(old, index);
  entry->stamp_ = Stamp(now.micros, state);
  PushFront(state, index);
  return ActivityChangeOf(old, state);
}

void FlowTable::Remove(FlowEntry* entry) {
  const uint32_t index = IndexOf(entry);
  if (index == kNil) return;
  RemoveEntry(index, RemovalReason::kRemoved);
}

size_t FlowTable::ExpireSome(FlowClock now, size_t max_entries) {
  const int64_t now_us = now.micros;
  size_t removed = 0;
  // Start at a different list each call, so that a small budget does not
  // always go to the same state.
  for (int k = 0; k < kNumFlowStates && removed < max_entries; ++k) {
    const List& list = lists_[(sweep_cursor_ + k) % kNumFlowStates];
    while (removed < max_entries && list.tail != kNil &&
           Expired(entries_[list.tail], now_us)) {
      RemoveEntry(list.tail, RemovalReason::kExpired);
      ++removed;
    }
  }
  sweep_cursor_ = (sweep_cursor_ + 1) % kNumFlowStates;
  return removed;
}

size_t FlowTable::size_in_state(FlowState state) const {
  if (!IsValidFlowState(state)) return 0;
  return lists_[static_cast<int>(state)].size;
}

FlowIndexStats FlowTable::IndexStats() const {
  FlowIndexStats stats;
  stats.slots = size_t{slot_mask_} + 1;
  size_t total = 0;
  for (size_t i = 0; i < stats.slots; ++i) {
    if (slots_[i].entry == kNil) continue;
    const size_t displacement =
        (static_cast<uint32_t>(i) - slots_[i].tag) & slot_mask_;
    ++stats.occupied;
    total += displacement;
    stats.max_displacement = std::max(stats.max_displacement, displacement);
  }
  if (stats.occupied > 0) {
    stats.mean_displacement = static_cast<double>(total) / stats.occupied;
  }
  return stats;
}

absl::Status FlowTable::CheckConsistency() const {
  auto fail = [](auto&&... args) {
    return absl::InternalError(absl::StrCat("flow table: ", args...));
  };
  // Index: every occupied slot points at a distinct live entry, with its
  // tag, and is the first match on the entry's probe sequence.
  size_t occupied = 0;
  for (size_t i = 0; i <= slot_mask_; ++i) {
    const Slot& slot = slots_[i];
    if (slot.entry == kNil) continue;
    ++occupied;
    if (slot.entry >= capacity_) {
      return fail("slot ", i, " points at entry ", slot.entry,
                  " beyond capacity ", capacity_);
    }
    const FlowEntry& entry = entries_[slot.entry];
    if (!IsStorable(entry.state())) {
      return fail("slot ", i, " points at free entry ", slot.entry);
    }
    if (Hash(entry.key_) != slot.tag) {
      return fail("slot ", i, " has a tag that is not its key's hash");
    }
    if (FindSlot(entry.key_, slot.tag) != i) {
      return fail("slot ", i, " (entry ", slot.entry,
                  ") is not found by probing from its home slot");
    }
  }
  if (occupied != size_) {
    return fail(occupied, " occupied slots but size ", size_);
  }
  // Lists: consistent links, the right states, counts.
  size_t listed = 0;
  size_t unconfirmed = 0;
  for (int s = 0; s < kNumFlowStates; ++s) {
    const List& list = lists_[s];
    uint32_t prev = kNil;
    uint32_t count = 0;
    for (uint32_t i = list.head; i != kNil; i = links_[i].next) {
      if (i >= capacity_ || count > capacity_) {
        return fail("list ", Name(static_cast<FlowState>(s)),
                    " is corrupt at entry ", i);
      }
      if (links_[i].prev != prev) {
        return fail("entry ", i, " has prev ", links_[i].prev, ", not ", prev);
      }
      if (static_cast<int>(entries_[i].state()) != s) {
        return fail("entry ", i, " in state ", Name(entries_[i].state()),
                    " is on list ", Name(static_cast<FlowState>(s)));
      }
      prev = i;
      ++count;
    }
    if (prev != list.tail || count != list.size) {
      return fail("list ", Name(static_cast<FlowState>(s)), " has ", count,
                  " entries ending at ", prev, " but records ", list.size,
                  " ending at ", list.tail);
    }
    listed += count;
    if (IsUnconfirmed(static_cast<FlowState>(s))) unconfirmed += count;
  }
  if (listed != size_) return fail(listed, " listed flows but size ", size_);
  if (unconfirmed != unconfirmed_size_) {
    return fail(unconfirmed, " unconfirmed flows listed but count ",
                unconfirmed_size_);
  }
  // Free list: every other entry, all marked free.
  size_t free_count = 0;
  for (uint32_t i = free_head_; i != kNil; i = links_[i].next) {
    if (i >= capacity_ || free_count > capacity_) {
      return fail("free list is corrupt at entry ", i);
    }
    if (entries_[i].stamp_ != kFreeStamp) {
      return fail("entry ", i, " is on the free list but live");
    }
    ++free_count;
  }
  if (free_count + size_ != capacity_) {
    return fail(free_count, " free + ", size_, " live != capacity ", capacity_);
  }
  return absl::OkStatus();
}

}  // namespace anylb::scheduler
