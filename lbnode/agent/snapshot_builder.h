// BuildEngineConfig: the one place where lb.v1 protos become the
// dataplane's plain structs. It checks a ConfigSnapshot's meaning (the
// config file parser only checks its syntax), applies administrative state
// and fleet-wide health to the weights, and produces everything a node
// installs for one revision: the EngineSnapshot the workers read, the
// steering program's map contents, and the names that label metrics.
//
//   ASSIGN_OR_RETURN(lb::v1::ConfigSnapshot proto, LoadConfigFile(path));
//   ASSIGN_OR_RETURN(EngineConfig config, BuildEngineConfig(proto, identity));
//   RETURN_IF_ERROR(steer->ReplaceVips(config.vips));
//   ... publish config.snapshot to the workers ...
//
// Rules and weights: config::NormalizeConfig (common/config/normalize.h)
// checks every rule of the API and computes effective weights — the same
// code the controller validates with, so a node never refuses what the
// controller stored. What is left here is the node's part: the engine's
// types, the derived hash seed, and EngineSnapshot::Create's own checks
// (MTU against tunnel overhead, tunnel sources, ...), which run last; their
// error is returned as it is.
//
// Hash seed: hash_seed 0 becomes Hash64 of (VIP bytes, port, protocol)
// (DeriveHashSeed), the same on every node.
//
// Health: the fleet's verdicts (ConfigSnapshot.backend_health) set the
// weights (normalize.h), so every node builds the same tables. This node's
// own verdicts enter in one of two ways:
//   * controller mode: `local_down` lists the backends this node's checks
//     find DOWN; each one the fleet does not hold DOWN keeps its weight (and
//     its Maglev slots) but gets BackendConfig::available = false, so this
//     node's new flows fall back past it;
//   * standalone mode: the node's verdicts are the fleet's —
//     OverlayLocalHealth writes them into backend_health before building.
//
// Threading: pure functions of their arguments; any thread.

#ifndef ANYLB_LBNODE_AGENT_SNAPSHOT_BUILDER_H_
#define ANYLB_LBNODE_AGENT_SNAPSHOT_BUILDER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/ip_address.h"
#include "lb/v1/config.pb.h"
#include "lbnode/dataplane/bpf/steer_loader.h"
#include "lbnode/dataplane/config.h"

namespace anylb::agent {

// NodeIdentity is what only the running node knows about itself (from its
// interfaces and flags, not from the controller).
struct NodeIdentity {
  dataplane::Mac mac{};  // Source MAC of transmitted frames.
  // Outer sources of tunnels to IPv4 / IPv6 real servers (TUN mode).
  std::optional<IpAddress> tunnel_source_v4;
  std::optional<IpAddress> tunnel_source_v6;
  uint32_t mtu = 1500;     // IP MTU of the egress link.
  uint8_t outer_ttl = 64;  // TTL / hop limit of outer tunnel headers.
};

// ServiceNames labels one service of an EngineSnapshot in metrics and logs.
struct ServiceNames {
  std::string name;      // "web"
  std::string vip;       // "192.0.2.10" (canonical text)
  uint16_t port = 0;     // 0: all ports
  std::string protocol;  // "tcp" or "udp"
  // One per backend, in the snapshot's (canonical) order: "198.51.100.2:80",
  // "[2001:db8::2]:80".
  std::vector<std::string> backends;
  // The sorry backend is in the service (no backend takes new flows):
  // sorry_backend is its name in `backends`.
  bool sorry_active = false;
  std::string sorry_backend;
};

// NameTable: by snapshot service index.
using NameTable = std::vector<ServiceNames>;

// EngineConfig is everything a node installs for one config revision.
struct EngineConfig {
  uint64_t revision = 0;
  std::shared_ptr<const dataplane::EngineSnapshot> snapshot;
  // For SteerProgram::ReplaceVips / ReplaceLocalAddresses /
  // ReplaceNatBackends.
  std::set<dataplane::bpf::SteerVip> vips;
  std::set<IpAddress> local_addresses;
  std::set<dataplane::bpf::SteerNatBackend> nat_backends;
  // Shared so metrics can keep the table of the snapshot a worker still
  // runs while a newer one is installed.
  std::shared_ptr<const NameTable> names;
};

// BackendId names a real server of a service as lb.v1.BackendRef does: the
// service's name and the backend's address and port as configured (port 0:
// the service's port; such ids match the backend by its effective port).
struct BackendId {
  std::string service;
  Endpoint backend;
  friend bool operator==(const BackendId&, const BackendId&) = default;
  friend auto operator<=>(const BackendId&, const BackendId&) = default;
};

// LocalVerdict is this node's own view of one real server.
struct LocalVerdict {
  BackendId id;
  lb::v1::HealthState state = lb::v1::HEALTH_STATE_UNSPECIFIED;
  // From an exec check with dynamic_weight (0 quiesces); unset: none.
  std::optional<uint32_t> dynamic_weight;
};

// BuildEngineConfig checks `config` and builds an EngineConfig; see the file
// comment. `local_down`: the backends this node finds DOWN (controller
// mode; ids of backends not in `config` are ignored).
absl::StatusOr<EngineConfig> BuildEngineConfig(
    const lb::v1::ConfigSnapshot& config, const NodeIdentity& identity,
    const std::set<BackendId>& local_down = {});

// OverlayLocalHealth returns `config` with `verdicts` as its backend_health
// (standalone mode: the node's verdicts are the fleet's). A verdict UP or
// DOWN replaces the config's entry for that backend; UNSPECIFIED (not
// checked yet) leaves it. Verdicts of backends `config` does not have (a
// reload removed them) are skipped, so the result always normalizes when
// `config` does.
lb::v1::ConfigSnapshot OverlayLocalHealth(
    const lb::v1::ConfigSnapshot& config,
    const std::vector<LocalVerdict>& verdicts);

// ServiceNameOf is the name normalization gives `service` (its name, or
// DefaultServiceName when unnamed; "" when its VIP, port or protocol is
// invalid).
std::string ServiceNameOf(const lb::v1::Service& service);

// DeriveHashSeed is the Maglev seed of a service whose hash_seed is 0.
uint64_t DeriveHashSeed(const IpAddress& vip, uint16_t port, uint8_t protocol);

}  // namespace anylb::agent

#endif  // ANYLB_LBNODE_AGENT_SNAPSHOT_BUILDER_H_
