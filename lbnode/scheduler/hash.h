// Deterministic hashing: the same value on every node, process and run.
//
// Nodes of the fleet must agree on which real server a flow goes to, so the
// hashes behind Maglev's permutations and the schedulers cannot be
// absl::Hash or std::hash (both may be seeded per process). Hash64,
// HashEndpoint and HashFlow are fixed functions of their input bytes and a
// seed, pinned across releases by hash_test.
//
// FlowKeyHasher is the exception: the hash of one worker's flow table (and
// the per-flow entropy taken from it: GUE source port, IPv6 flow label). No
// other node or process ever needs its values, so it is free to change
// between releases and is chosen for speed; never use it for anything nodes
// must agree on.
//
// Everything here is a pure function of its arguments: any thread may call
// it.

#ifndef ANYLB_LBNODE_SCHEDULER_HASH_H_
#define ANYLB_LBNODE_SCHEDULER_HASH_H_

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>

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
// byte order: one unaligned load on little-endian hosts.
constexpr uint64_t LoadLe(const uint8_t* p, size_t n) {
  if (std::is_constant_evaluated()) {
    uint64_t w = 0;
    for (size_t i = 0; i < n; ++i) w |= uint64_t{p[i]} << (8 * i);
    return w;
  }
  uint64_t w = 0;
  std::memcpy(&w, p, n);
  if constexpr (std::endian::native == std::endian::big) {
    w = __builtin_bswap64(w);  // p[0] lands in the low byte
  }
  return w;
}

// Hash64 hashes `bytes` with `seed`. Each 8-byte little-endian word is
// folded in with one multiply-rotate-multiply round (the shape of xxHash64's
// round, Collet 2012); the word's multiply does not depend on the running
// state, so a 40-byte FlowKey costs five short dependent steps. One Mix64
// at the end spreads every input bit over the whole result. The length is
// folded into the start so that inputs differing only by trailing zero bytes
// differ.
constexpr uint64_t Hash64(std::span<const uint8_t> bytes, uint64_t seed) {
  constexpr uint64_t kPrime1 = 0x9e3779b185ebca87ULL;
  constexpr uint64_t kPrime2 = 0xc2b2ae3d27d4eb4fULL;
  uint64_t h = seed ^ (kPrime1 * (bytes.size() + 1));
  size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    h ^= LoadLe(bytes.data() + i, 8) * kPrime2;
    h = ((h << 31) | (h >> 33)) * kPrime1;
  }
  if (i < bytes.size()) {
    h ^= LoadLe(bytes.data() + i, bytes.size() - i) * kPrime2;
    h = ((h << 31) | (h >> 33)) * kPrime1;
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
inline uint64_t HashFlow(const FlowKey& flow, HashInputs inputs,
                         uint64_t seed) {
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

// Mum is the 128-bit product of `a` and `b` folded to 64 bits (low half
// xor high half): one multiply that lets every bit of each operand reach
// the middle and high bits of the result (wyhash's mixing step, Wang Yi
// 2019). Weakness: a zero operand annihilates the other, which is why
// FlowKeyHasher xors secret words into both operands.
constexpr uint64_t Mum(uint64_t a, uint64_t b) {
  __extension__ using U128 = unsigned __int128;
  const U128 product = static_cast<U128>(a) * b;
  return static_cast<uint64_t>(product) ^ static_cast<uint64_t>(product >> 64);
}

// FlowKeyHasher is the flow table's hash of the fixed-size FlowKey (five
// 64-bit words w0..w4, little-endian): about 25 instructions, four
// multiplies three deep (x and y in parallel), against Hash64's 64
// instructions and eleven multiplies seven deep:
//   x = Mum(w0 ^ s0, w1 ^ s1)       source address
//   y = Mum(w2 ^ s2, w3 ^ s3)       destination address (independent of x)
//   z = Mum(x ^ w4 ^ s4, y ^ s5)    ports, protocol, family
//   hash = Mum(z, golden ratio)      spreads z's bits over the low half
// The secrets s0..s5 come from the seed (SplitMix64 of seed + i·φ), so a
// random per-table seed keeps outsiders from steering flows into one probe
// run or, knowing a secret, zeroing an operand. hash_test checks the strict
// avalanche criterion (every input bit flips every output bit with
// probability ≈ 1/2) on realistic keys (one /24 of clients, sequential
// ports), and the spread of the low bits used for table slots, GUE source
// ports and flow labels. Not stable across releases (see the file comment).
class FlowKeyHasher {
 public:
  constexpr explicit FlowKeyHasher(uint64_t seed) {
    for (size_t i = 0; i < secret_.size(); ++i) {
      secret_[i] = Mix64(seed + (i + 1) * 0x9e3779b97f4a7c15ULL);
    }
  }

  uint64_t operator()(const FlowKey& key) const {
    static_assert(sizeof(FlowKey) == 40 &&
                  std::is_trivially_copyable_v<FlowKey>);
    const auto* bytes = reinterpret_cast<const uint8_t*>(&key);
    // Five scalar loads straight from the key (an array here made GCC copy
    // the key to the stack first).
    const uint64_t w0 = LoadLe(bytes, 8);
    const uint64_t w1 = LoadLe(bytes + 8, 8);
    const uint64_t w2 = LoadLe(bytes + 16, 8);
    const uint64_t w3 = LoadLe(bytes + 24, 8);
    const uint64_t w4 = LoadLe(bytes + 32, 8);
    const uint64_t x = Mum(w0 ^ secret_[0], w1 ^ secret_[1]);
    const uint64_t y = Mum(w2 ^ secret_[2], w3 ^ secret_[3]);
    const uint64_t z = Mum(x ^ w4 ^ secret_[4], y ^ secret_[5]);
    return Mum(z, 0x9e3779b97f4a7c15ULL);
  }

 private:
  std::array<uint64_t, 6> secret_{};
};

}  // namespace anylb::scheduler

#endif  // ANYLB_LBNODE_SCHEDULER_HASH_H_
