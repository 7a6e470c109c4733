// Engine configuration: plain structs built once per snapshot on the
// control path (from lb.v1 protos, elsewhere) and an immutable, validated
// EngineSnapshot that every worker's Engine reads.
//
// Rules EngineSnapshot::Create enforces (INVALID_ARGUMENT unless noted):
// * DR and TUN cannot map ports (the backend answers the client from the
//   VIP:port directly): every backend port must equal the service port (0
//   for an all-ports service).
// * Families: DR backends have the VIP's family. TUN IPIP carries IPv4 in
//   IPv4 (RFC 2003, protocol 4) and IPv6 in IPv6 (RFC 2473, next header 41),
//   so the backend family must equal the VIP family. GUE (draft-ietf-
//   intarea-gue, variant 1) carries either inner family over either outer
//   family. The node's tunnel source of the backend's family must be set.
// * NAT and FULLNAT may map ports: a backend port of 0 means "the client's
//   destination port" (useful in an all-ports service). Their backends have
//   the VIP's family (no NAT64). FULLNAT needs a local address of every
//   backend family in NodeConfig::local_addresses.
// * Local addresses: unique, not a VIP; 1 <= local_port_min <= local_port_max
//   (Engine::Create also checks that each worker gets at least one port).
// * Protocol is TCP or UDP; VIP:port:protocol unique;
//   backend endpoints unique within a service; MTU in [576, 65535] (IPv4
//   minimum datagram size, RFC 791), at least 1280 with an IPv6 VIP, and for
//   TUN with an IPv6 VIP at least 1280 + the tunnel overhead (a client
//   cannot go below 1280, RFC 8200 §5, so "packet too big" could not help).

#ifndef ANYLB_LBNODE_DATAPLANE_CONFIG_H_
#define ANYLB_LBNODE_DATAPLANE_CONFIG_H_

#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "common/ip_address.h"
#include "lbnode/scheduler/hash.h"
#include "lbnode/scheduler/persistence.h"
#include "lbnode/scheduler/scheduler.h"

namespace anylb::dataplane {

// Mac is an Ethernet address in wire order.
using Mac = std::array<uint8_t, 6>;

// ForwardingMode is how a service's packets reach the real server.
enum class ForwardingMode : uint8_t {
  kDr,       // Direct routing: destination MAC rewrite only.
  kTun,      // IP-in-IP / IP6-in-IP6 / GUE encapsulation.
  kNat,      // Destination NAT; replies return through the director.
  kFullNat,  // Source + destination NAT from the node's local addresses.
};

// TunnelType is the TUN encapsulation.
enum class TunnelType : uint8_t {
  kIpip,  // IPv4-in-IPv4 (RFC 2003) or IPv6-in-IPv6 (RFC 2473).
  kGue,   // GUE variant 1 over UDP (draft-ietf-intarea-gue §4.1).
};

// kDefaultGuePort is the GUE UDP port (draft-ietf-intarea-gue §5).
inline constexpr uint16_t kDefaultGuePort = 6080;

// BackendConfig is one real server of a service.
struct BackendConfig {
  Endpoint endpoint;
  uint32_t weight = 1;
  // DR: the backend's MAC on the shared L2 segment, or all zeros to take
  // it from the NextHopResolver (the neighbour table). Unused by TUN, NAT
  // and FULLNAT, whose next hop always comes from the NextHopResolver.
  // The endpoint's port: DR/TUN: the service port; NAT/FULLNAT: the port
  // the backend listens on, 0 = the client's destination port.
  Mac mac{};
  // ipvsadm -x / -y.
  uint32_t upper_threshold = 0;
  uint32_t lower_threshold = 0;
  // False when this node's own health checks find the backend down while
  // the fleet's verdict counts it up: it keeps its weight (and so its
  // Maglev slots, the same table on every node), but new flows fall back
  // past it (scheduler::SchedBackend::available).
  bool available = true;
};

// ServiceConfig is one virtual service: VIP, port (0 = all ports),
// protocol, scheduling and forwarding.
struct ServiceConfig {
  IpAddress vip;
  uint16_t port = 0;
  uint8_t protocol = 6;  // IANA: 6 TCP, 17 UDP.
  scheduler::SchedulerConfig scheduler;
  ForwardingMode mode = ForwardingMode::kDr;
  TunnelType tunnel = TunnelType::kIpip;
  uint16_t gue_port = kDefaultGuePort;
  // ipvsadm -p/-M: clients of one network stick to one real server.
  // Unset: no persistence.
  std::optional<scheduler::PersistencePolicy> persistence;
  // Any order here; the snapshot stores them in canonical order (sorted by
  // endpoint), the order schedulers index.
  std::vector<BackendConfig> backends;
};

// NodeConfig is what the engine needs to know about this director.
struct NodeConfig {
  Mac mac{};                   // Source MAC of everything it transmits.
  IpAddress tunnel_source_v4;  // Outer source of IPv4 tunnels (unset: none).
  IpAddress tunnel_source_v6;  // Outer source of IPv6 tunnels (unset: none).
  bool has_tunnel_source_v4 = false;
  bool has_tunnel_source_v6 = false;
  uint32_t mtu = 1500;     // IP MTU of the egress link.
  uint8_t outer_ttl = 64;  // TTL / hop limit of outer tunnel headers.
  // FULLNAT: this node's local addresses (source of packets to real
  // servers; replies come back to them), and the source-port range
  // allocated on each.
  std::vector<IpAddress> local_addresses;
  uint16_t local_port_min = 1024;
  uint16_t local_port_max = 65535;
};

// ServiceKey identifies a service: VIP, port and protocol. Padding-free so
// it hashes by bytes.
struct ServiceKey {
  std::array<uint8_t, 16> address{};
  uint16_t port = 0;
  uint8_t protocol = 0;
  IpFamily family = IpFamily::kV4;

  friend bool operator==(const ServiceKey& a, const ServiceKey& b) {
    return std::memcmp(&a, &b, sizeof(ServiceKey)) == 0;
  }
};
static_assert(sizeof(ServiceKey) == 20, "ServiceKey must stay padding-free");

// ServiceKeyHash hashes a ServiceKey's bytes in one Hash64 (cheaper on the
// packet path than absl's field-by-field combine).
struct ServiceKeyHash {
  size_t operator()(const ServiceKey& k) const {
    return static_cast<size_t>(scheduler::Hash64(
        {reinterpret_cast<const uint8_t*>(&k), sizeof(k)}, 0x5e5c1e));
  }
};

// EngineSnapshot is an immutable, validated configuration: node settings,
// services with backends in canonical order, and the lookup index. Built on
// the control path, shared read-only (shared_ptr<const>) by every worker.
class EngineSnapshot {
 public:
  // Create validates `node` and `services` by the file comment's rules and
  // builds the index.
  static absl::StatusOr<std::shared_ptr<const EngineSnapshot>> Create(
      NodeConfig node, std::vector<ServiceConfig> services);

  const NodeConfig& node() const { return node_; }
  const std::vector<ServiceConfig>& services() const { return services_; }

  // Find returns the index of the service for (vip, port, protocol), trying
  // the exact port first and then an all-ports (port 0) service; -1 when
  // none. Never allocates.
  int Find(const ServiceKey& key) const;
  // IsVip: some service has this address (any port or protocol).
  bool IsVip(const IpAddress& address) const { return vips_.contains(address); }
  // IsLocalAddress: `address` is one of node().local_addresses (FULLNAT).
  bool IsLocalAddress(const IpAddress& address) const {
    return locals_.contains(address);
  }
  // IsNatBackendSource: (address, port, protocol) is the source a NAT-mode
  // backend answers from (its endpoint; any port for a backend port 0): a
  // frame with this source that matches no flow is a reply without a flow,
  // not the kernel's traffic. Never allocates.
  bool IsNatBackendSource(const uint8_t* address, IpFamily family,
                          uint16_t port, uint8_t protocol) const;
  // IsNatBackendHost: a NAT-mode backend has this address, for `protocol`
  // (any port): a later fragment (no ports) from it that matches nothing is
  // a reply fragment without its first, not the kernel's traffic.
  bool IsNatBackendHost(const uint8_t* address, IpFamily family,
                        uint8_t protocol) const;
  // UsesNat: some service uses NAT or FULLNAT.
  bool UsesNat() const { return uses_nat_; }

  // MakeServiceKey builds a key from raw address bytes (4 or 16). Inline:
  // every flow miss builds one.
  static ServiceKey MakeServiceKey(const uint8_t* address, IpFamily family,
                                   uint16_t port, uint8_t protocol) {
    ServiceKey key;
    std::memcpy(key.address.data(), address, family == IpFamily::kV4 ? 4 : 16);
    key.family = family;
    key.port = port;
    key.protocol = protocol;
    return key;
  }

 private:
  EngineSnapshot() = default;
  NodeConfig node_;
  std::vector<ServiceConfig> services_;
  absl::flat_hash_map<ServiceKey, int, ServiceKeyHash> index_;
  absl::flat_hash_set<IpAddress> vips_;
  absl::flat_hash_set<IpAddress> locals_;
  // NAT backend sources, as ServiceKeys (address, port, protocol; port 0 for
  // "any port").
  absl::flat_hash_set<ServiceKey, ServiceKeyHash> nat_sources_;
  // The same with port 0: NAT backend addresses by protocol.
  absl::flat_hash_set<ServiceKey, ServiceKeyHash> nat_hosts_;
  bool uses_nat_ = false;
};

}  // namespace anylb::dataplane

#endif  // ANYLB_LBNODE_DATAPLANE_CONFIG_H_
