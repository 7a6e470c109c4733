// Counting heap allocations, to test that packet-path code never allocates.
//
// A test binary that links //common/testing:allocation_counter has every
// global operator new/delete (plain, array, aligned, nothrow, sized)
// replaced by versions that count allocations between
// StartCountingAllocations() and StopCountingAllocations():
//
//   StartCountingAllocations();
//   engine->Process(...);
//   EXPECT_EQ(StopCountingAllocations(), 0u);
//
// Counting covers every thread of the process; the counter is off outside
// the two calls. ASan's own allocation functions are replaced too (the
// nothrow forms included), so the check also holds under --config=asan.

#ifndef ANYLB_COMMON_TESTING_ALLOCATION_COUNTER_H_
#define ANYLB_COMMON_TESTING_ALLOCATION_COUNTER_H_

#include <cstdint>

namespace anylb::alloc_testing {

// StartCountingAllocations resets the count to 0 and starts counting.
void StartCountingAllocations();

// StopCountingAllocations stops counting and returns the allocations made
// since StartCountingAllocations().
uint64_t StopCountingAllocations();

}  // namespace anylb::alloc_testing

#endif  // ANYLB_COMMON_TESTING_ALLOCATION_COUNTER_H_
