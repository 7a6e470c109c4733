// ReferenceMaglevTable: the NSDI'16 paper's unweighted Maglev, as written.
//
// Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load
// Balancer", NSDI'16, §3.4, Pseudocode 1, transcribed without optimisation:
// permutation[i][j] = (offset + j * skip) mod M computed with `%`, an int
// entry[] with -1 for free slots, next[] per backend. Same offsets and skips
// as MaglevTable (MaglevPermutationFor), so with equal weights the two
// tables must be identical. For tests, benchmarks and maglev_report only:
// the baseline MaglevTable is measured against. Also DocumentationEndpoint(),
// their synthetic backends.

#ifndef ANYLB_LBNODE_SCHEDULER_INTERNAL_MAGLEV_REFERENCE_H_
#define ANYLB_LBNODE_SCHEDULER_INTERNAL_MAGLEV_REFERENCE_H_

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "common/ip_address.h"
#include "lbnode/scheduler/maglev.h"

namespace anylb::scheduler::internal {

// ReferenceMaglevTable returns the M slot owners (indices into `endpoints`,
// which must be sorted and distinct; -1 everywhere when there are none).
inline std::vector<int32_t> ReferenceMaglevTable(
    std::span<const Endpoint> endpoints, uint32_t table_size, uint64_t seed) {
  const uint64_t m = table_size;
  const size_t n = endpoints.size();
  std::vector<uint64_t> offset(n);
  std::vector<uint64_t> skip(n);
  std::vector<uint64_t> next(n, 0);
  for (size_t i = 0; i < n; ++i) {
    const MaglevPermutation p =
        MaglevPermutationFor(endpoints[i], table_size, seed);
    offset[i] = p.offset;
    skip[i] = p.skip;
  }
  std::vector<int32_t> entry(m, -1);
  if (n == 0) return entry;
  uint64_t filled = 0;
  for (;;) {
    for (size_t i = 0; i < n; ++i) {
      uint64_t c = (offset[i] + next[i] * skip[i]) % m;
      while (entry[c] >= 0) {
        ++next[i];
        c = (offset[i] + next[i] * skip[i]) % m;
      }
      entry[c] = static_cast<int32_t>(i);
      ++next[i];
      if (++filled == m) return entry;
    }
  }
}

// ReferenceChangedSlots counts the slots whose owner endpoint differs
// between two reference tables of one size.
inline size_t ReferenceChangedSlots(std::span<const Endpoint> before_endpoints,
                                    std::span<const int32_t> before,
                                    std::span<const Endpoint> after_endpoints,
                                    std::span<const int32_t> after) {
  size_t changed = 0;
  for (size_t s = 0; s < before.size() && s < after.size(); ++s) {
    const bool has_before = before[s] >= 0;
    const bool has_after = after[s] >= 0;
    if (has_before != has_after ||
        (has_before &&
         before_endpoints[before[s]] != after_endpoints[after[s]])) {
      ++changed;
    }
  }
  return changed;
}

// DocumentationEndpoint is the i-th synthetic backend, on documentation
// addresses, port 80: 198.51.100.1-254 for i < 254 (RFC 5737), then
// 2001:db8::<i+1> (RFC 3849). Distinct for distinct i < 2^32 - 1.
inline Endpoint DocumentationEndpoint(size_t i) {
  const uint32_t n = static_cast<uint32_t>(i) + 1;
  if (i < 254) return {IpAddress::FromV4(0xc6336400u + n), 80};
  std::array<uint8_t, 16> b = {0x20, 0x01, 0x0d, 0xb8};
  b[12] = static_cast<uint8_t>(n >> 24);
  b[13] = static_cast<uint8_t>(n >> 16);
  b[14] = static_cast<uint8_t>(n >> 8);
  b[15] = static_cast<uint8_t>(n);
  return {IpAddress::FromV6Bytes(b), 80};
}

}  // namespace anylb::scheduler::internal

#endif  // ANYLB_LBNODE_SCHEDULER_INTERNAL_MAGLEV_REFERENCE_H_
