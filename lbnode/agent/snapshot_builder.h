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
// Rules (each violation is one line of an INVALID_ARGUMENT that lists all
// of them, up to kMaxConfigErrors, each naming the service, the field and
// the value):
//   * addresses parse (IpAddress / IpPrefix); backends have the VIP's
//     family except with TUN+GUE, which carries either family;
//   * service names are 1..63 of [a-z0-9._-] and unique; an unnamed service
//     is called "tcp-192.0.2.10-80" (as the controller names it);
//     VIP:port:protocol is unique; port <= 65535;
//   * protocol, scheduler and forwarding mode are required; every enum has
//     a known value;
//   * scheduler_flags only for sh and mh; hash_inputs and
//     maglev_table_size only for mh; the table size is prime, at most
//     16777213 and at least the number of backends in the table;
//   * forwarding: a backend's own `forwarding` must equal the service's
//     (the engine keeps one mode per service); tunnel_type only with TUN,
//     gue_port (<= 65535) only with GUE; DR and TUN cannot map ports
//     (backend port 0 or the VIP's port); FULLNAT needs node
//     local_addresses of the backends' family;
//   * weights 0..65535 (ipvsadm -w), lower_threshold <= upper_threshold;
//   * persistence by scheduler::PersistencePolicy::Create (port 0 only with
//     persistence, prefix lengths in range, timeout >= 0);
//   * sorry_backend is not supported by the dataplane yet (rejected rather
//     than ignored);
//   * node: weight 0..1000000; local_addresses are prefixes of at most
//     kMaxLocalAddresses addresses in all, without overlaps;
//   * backend_health names a backend of the config.
// EngineSnapshot::Create's own checks (MTU against tunnel overhead, tunnel
// sources, ...) run last; its error is returned as it is.
//
// Weights: a backend's effective weight is its configured weight (1 when
// omitted, as in ipvsadm), or the
// health verdict's dynamic_weight when that is non-zero. BACKEND_STATE_
// DRAINING, and HEALTH_STATE_DOWN with FAILURE_ACTION_INHIBIT (the
// default), make it 0: it stays in the service and keeps its established
// flows (the flow table) but gets no new ones (a weight-0 backend owns no
// Maglev slot). BACKEND_STATE_DISABLED, and HEALTH_STATE_DOWN with
// FAILURE_ACTION_REMOVE, leave it out of the service.
//
// Hash seed: hash_seed 0 becomes Hash64 of (VIP bytes, port, protocol)
// (DeriveHashSeed), the same on every node.
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

// kMaxLocalAddresses bounds the FULLNAT addresses a node expands its
// local_addresses prefixes into (a /20 of IPv4, a /116 of IPv6).
inline constexpr int kMaxLocalAddresses = 4096;

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

// BuildEngineConfig checks `config` and builds an EngineConfig; see the file
// comment.
absl::StatusOr<EngineConfig> BuildEngineConfig(
    const lb::v1::ConfigSnapshot& config, const NodeIdentity& identity);

// DeriveHashSeed is the Maglev seed of a service whose hash_seed is 0.
uint64_t DeriveHashSeed(const IpAddress& vip, uint16_t port, uint8_t protocol);

// DefaultServiceName is the name of an unnamed service: "tcp-192.0.2.10-80",
// "udp-2001:db8::10-53".
std::string DefaultServiceName(const IpAddress& vip, uint16_t port,
                               uint8_t protocol);

}  // namespace anylb::agent

#endif  // ANYLB_LBNODE_AGENT_SNAPSHOT_BUILDER_H_
