// libFuzzer target over everything a peer's bytes reach: the frame reader,
// both payload decoders and the FIB they feed (including table builds).
// The input is a TCP stream as zebra would send it.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "routing/fpm/decoder.h"
#include "routing/fpm/fib.h"
#include "routing/fpm/frame.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace anylb::routing::fpm;
  // Feed in two pieces, as TCP may split it, to cover reassembly.
  const size_t split = size == 0 ? 0 : data[0] % (size + 1);
  FrameReader reader;
  Fib fib;
  DecoderStats stats;
  std::vector<FibUpdate> updates;
  for (const auto piece :
       {std::span<const uint8_t>(data, split),
        std::span<const uint8_t>(data + split, size - split)}) {
    reader.Append(piece);
    Frame frame;
    FpmError error;
    std::string reason;
    while (reader.Next(&frame, &error, &reason) ==
           FrameReader::Result::kFrame) {
      updates.clear();
      if (!DecodeFrame(frame, &updates, &stats, &error).ok()) {
        if (!updates.empty()) __builtin_trap();  // Nothing half-applied.
        return 0;
      }
      for (const FibUpdate& update : updates) fib.Apply(update);
      if (fib.route_count() > 0 && (fib.route_count() & 7) == 0) {
        fib.BeginResync();
      }
    }
  }
  size_t unresolved = 0;
  auto table = fib.BuildTable(&unresolved);
  for (const auto& route : table->routes()) {
    if (table->Lookup(route.destination.address()) == nullptr) {
      __builtin_trap();  // Every route must be found by its own address.
    }
  }
  fib.SweepStale();
  return 0;
}
