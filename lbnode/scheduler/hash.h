// Deterministic hashing: the same value on every node, process and run.
//
// Nodes of the fleet must agree on which real server a flow goes to, so the
// hashes behind Maglev's permutations and the packet → table slot mapping
// cannot be absl::Hash or std::hash (both may be seeded per process). These
// are fixed functions of their input bytes and a seed.

#ifndef ANYLB_LBNODE_SCHEDULER_HASH_H_
#define ANYLB_LBNODE_SCHEDULER_HASH_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "common/ip_address.h"
#include "lbnode/scheduler/flow_key.h"

namespace anylb::scheduler {

// Mix64 is a bijective 64-bit finaliser (SplitMix64's, Steele et al.,
// "Fast splittable pseudorandom number generators", OOPSLA 2014): every
// input bit affects every output bit.
constexpr uint64_t Mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

// LoadLe reads up to 8 bytes as a little-endian number, whatever the host's
// byte order (compilers turn the loop into one load on x86).
constexpr uint64_t LoadLe(const uint8_t* p, size_t n) {
  uint64_t w = 0;
  for (size_t i = 0; i < n; ++i) w |= uint64_t{p[i]} << (8 * i);
  return w;
}

// Hash64 hashes `bytes` with `seed`: 8-byte little-endian words, each folded
// in with one Mix64 round, the length folded into the start so that inputs
// that differ only by trailing zero bytes hash differently.
constexpr uint64_t Hash64(std::span<const uint8_t> bytes, uint64_t seed) {
  uint64_t h = Mix64(seed ^ (0x9e3779b97f4a7c15ULL * (bytes.size() + 1)));
  size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    h = Mix64(h ^ LoadLe(bytes.data() + i, 8)) + 0x9e3779b97f4a7c15ULL;
  }
  if (i < bytes.size()) {
    h = Mix64(h ^ LoadLe(bytes.data() + i, bytes.size() - i)) +
        0x9e3779b97f4a7c15ULL;
  }
  return Mix64(h);
}

// HashEndpoint hashes a real server's identity (family, address, port), as
// Maglev's offset and skip do (two seeds give two independent hashes).
inline uint64_t HashEndpoint(const Endpoint& endpoint, uint64_t seed) {
  uint8_t buf[19] = {};
  const auto bytes = endpoint.address().bytes();
  buf[0] = endpoint.address().is_v4() ? 4 : 6;
  std::memcpy(buf + 1, bytes.data(), bytes.size());
  buf[17] = static_cast<uint8_t>(endpoint.port() >> 8);
  buf[18] = static_cast<uint8_t>(endpoint.port());
  return Hash64(buf, seed);
}

// HashInputs selects the packet fields a hashing scheduler uses (lb.v1
// HashInputs).
enum class HashInputs : uint8_t {
  kFiveTuple,     // src, dst, protocol, src port, dst port
  kThreeTuple,    // src, dst, protocol: fragments and ICMP
  kSourceIp,      // IPVS mh / sh: client affinity
  kSourceIpPort,  // IPVS mh-port / sh-port
};

// HashFlow hashes the fields of `flow` that `inputs` selects. Fields not
// selected are zeroed, so e.g. two flows from one client hash equal under
// kSourceIp whatever their ports and destinations.
inline uint64_t HashFlow(const FlowKey& flow, HashInputs inputs, uint64_t seed) {
  FlowKey k = flow;
  switch (inputs) {
    case HashInputs::kFiveTuple:
      break;
    case HashInputs::kThreeTuple:
      k.src_port = 0;
      k.dst_port = 0;
      break;
    case HashInputs::kSourceIp:
      k.dst = {};
      k.src_port = 0;
      k.dst_port = 0;
      k.protocol = 0;
      break;
    case HashInputs::kSourceIpPort:
      k.dst = {};
      k.dst_port = 0;
      k.protocol = 0;
      break;
  }
  return Hash64({reinterpret_cast<const uint8_t*>(&k), sizeof(k)}, seed);
}

}  // namespace anylb::scheduler

#endif  // ANYLB_LBNODE_SCHEDULER_HASH_H_
