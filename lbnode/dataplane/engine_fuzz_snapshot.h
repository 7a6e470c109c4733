// FuzzSnapshot: the fixed configuration engine_fuzz runs every input
// against, shared with engine_corpus_gen so that the seed corpus hits its
// services: DR and TUN (IPIP, IP6IP6, GUE) services on the VIPs the sample
// frames use (testdata/parser_corpus), and NAT / FULLNAT services whose
// addresses the engine corpus (testdata/engine_corpus) uses. Test-only.

#ifndef ANYLB_LBNODE_DATAPLANE_ENGINE_FUZZ_SNAPSHOT_H_
#define ANYLB_LBNODE_DATAPLANE_ENGINE_FUZZ_SNAPSHOT_H_

#include <cstdint>
#include <memory>

#include "lbnode/dataplane/config.h"

namespace anylb::dataplane::fuzz {

// Addresses and ports of the NAT and FULLNAT services (IPv4 and IPv6).
inline constexpr char kVip4[] = "198.51.100.10";
inline constexpr char kVip6[] = "2001:db8:100::10";
inline constexpr char kClient4[] = "203.0.113.7";
inline constexpr char kClient6[] = "2001:db8:7::7";
inline constexpr char kNatBackend4[] = "192.0.2.31";
inline constexpr char kNatBackend6[] = "2001:db8:2::31";
inline constexpr char kFullNatBackend4[] = "192.0.2.32";
inline constexpr char kFullNatBackend6[] = "2001:db8:2::32";
inline constexpr char kLocal4[] = "192.0.2.250";
inline constexpr char kLocal6[] = "2001:db8:ff::250";
inline constexpr uint16_t kNatPort = 8080;        // VIP port, TCP and UDP.
inline constexpr uint16_t kFullNatPort = 8443;    // VIP port, TCP and UDP.
inline constexpr uint16_t kBackendPort = 9000;    // Where both backends listen.
inline constexpr uint16_t kLocalPortMin = 20000;  // First FULLNAT port.

// FuzzSnapshot builds the snapshot (aborts if it does not validate).
std::shared_ptr<const EngineSnapshot> FuzzSnapshot();

}  // namespace anylb::dataplane::fuzz

#endif  // ANYLB_LBNODE_DATAPLANE_ENGINE_FUZZ_SNAPSHOT_H_
