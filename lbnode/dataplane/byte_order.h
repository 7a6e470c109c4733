// Big-endian (network order) loads and stores on unaligned packet bytes.
//
// Packet headers sit at arbitrary offsets in a frame, so fields are read and
// written byte by byte (compilers turn these into one load/store and a byte
// swap). The caller has already checked the bounds: these never do.

#ifndef ANYLB_LBNODE_DATAPLANE_BYTE_ORDER_H_
#define ANYLB_LBNODE_DATAPLANE_BYTE_ORDER_H_

#include <cstdint>

namespace anylb::dataplane {

// LoadBe16 reads the big-endian 16-bit value at `p`.
inline uint16_t LoadBe16(const uint8_t* p) {
  return static_cast<uint16_t>(uint16_t{p[0]} << 8 | p[1]);
}

// LoadBe32 reads the big-endian 32-bit value at `p`.
inline uint32_t LoadBe32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 |
         p[3];
}

// StoreBe16 writes `v` big-endian at `p`.
inline void StoreBe16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

// StoreBe32 writes `v` big-endian at `p`.
inline void StoreBe32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

}  // namespace anylb::dataplane

#endif  // ANYLB_LBNODE_DATAPLANE_BYTE_ORDER_H_
