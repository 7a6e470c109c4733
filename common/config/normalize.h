// NormalizeConfig: the one place that decides what an lb.v1 ConfigSnapshot
// means. It checks every rule of the API and turns the protos into plain,
// defaulted values (addresses parsed, enums resolved, effective weights
// computed), for lbnode's snapshot builder and for the controller's
// validation alike — so the controller stores nothing a node would refuse.
//
// Rules (each violation is one line of an INVALID_ARGUMENT that lists all
// of them, up to kMaxConfigErrors, each naming the service, the field and
// the value):
//   * addresses parse (IpAddress / IpPrefix); backends have the VIP's
//     family except with TUN+GUE, which carries either family;
//   * service names are 1..63 of [a-z0-9._:-] and unique; an unnamed service
//     is called "tcp-192.0.2.10-80" (DefaultServiceName);
//     VIP:port:protocol is unique; port <= 65535;
//   * protocol, scheduler and forwarding mode are required; every enum has
//     a known value;
//   * scheduler_flags only for sh and mh; hash_inputs and
//     maglev_table_size only for mh; the table size is prime, at most
//     kMaxMaglevTableSize and at least the number of backends in the table;
//   * forwarding: a backend's own `forwarding` must equal the service's
//     (the engine keeps one mode per service); tunnel_type only with TUN,
//     gue_port (<= 65535) only with GUE; DR and TUN cannot map ports
//     (backend port 0 or the VIP's port); FULLNAT needs node
//     local_addresses of the backends' family (unless the options say the
//     node is not known yet);
//   * weights 0..65535 (ipvsadm -w), lower_threshold <= upper_threshold;
//   * persistence by ValidatePersistence (port 0 only with persistence,
//     prefix lengths in range, timeout >= 0);
//   * health_check: interval >= 10ms, 0 < timeout < interval (defaults 5s
//     and 2s), exec argv and notify commands start with an absolute path,
//     HTTP status ranges within 100..599;
//   * sorry_backend is checked like a backend (family, DR/TUN port rule,
//     weight 1..65535, forwarding, not one of the backends) and is not
//     health checked (no health_check_address/port);
//   * node: weight 0..1000000; local_addresses are prefixes of at most
//     kMaxLocalAddresses addresses in all, without overlaps;
//   * backend_health names a backend of the config.
//
// Weights: a backend's effective weight is its configured weight (1 when
// omitted, as in ipvsadm), or the health verdict's dynamic_weight when that
// is set (0 quiesces, like keepalived's misc_dynamic exit status 2).
// BACKEND_STATE_DRAINING, and HEALTH_STATE_DOWN with
// FAILURE_ACTION_INHIBIT (the default), make it 0: it stays in the service
// and keeps its established flows but gets no new ones. BACKEND_STATE_
// DISABLED, and HEALTH_STATE_DOWN with FAILURE_ACTION_REMOVE, leave it out.
//
// Sorry server (keepalived's sorry_server): when no backend is left with an
// effective weight > 0 (all down, drained, disabled, or none configured),
// the service's sorry_backend (weight 1 unless set; never when DISABLED or
// DRAINING) is appended to its backends and NormalService::sorry_active is
// set. Inhibited backends stay at weight 0 beside it, so their established
// flows continue; new flows go to the sorry server until a backend is up
// again, when it leaves the service. The Maglev table size is checked
// against the backends plus the sorry server, so a config that is valid
// with every backend up stays valid when the sorry server steps in.
//
// Threading: pure functions of their arguments; any thread.

#ifndef ANYLB_COMMON_CONFIG_NORMALIZE_H_
#define ANYLB_COMMON_CONFIG_NORMALIZE_H_

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/config/rules.h"
#include "common/ip_address.h"
#include "lb/v1/config.pb.h"

namespace anylb::config {

// NormalForwarding: mode is never UNSPECIFIED; tunnel is IPIP or GUE (IPIP
// outside TUN); gue_port is the default 6080 unless set.
struct NormalForwarding {
  lb::v1::ForwardingMode mode = lb::v1::FORWARDING_MODE_DR;
  lb::v1::TunnelType tunnel = lb::v1::TUNNEL_TYPE_IPIP;
  uint16_t gue_port = kDefaultGuePort;
  friend bool operator==(const NormalForwarding&,
                         const NormalForwarding&) = default;
};

// NormalBackend: an enabled real server (disabled and removed ones are not
// listed).
struct NormalBackend {
  IpAddress address;
  uint16_t port = 0;    // 0 in the proto: the service's port
  uint32_t weight = 1;  // effective weight (see the file comment)
  uint32_t upper_threshold = 0;
  uint32_t lower_threshold = 0;
};

struct NormalService {
  std::string name;  // never empty (DefaultServiceName when unnamed)
  IpAddress vip;
  uint16_t port = 0;                                            // 0: all ports
  uint8_t protocol = 0;                                         // 6 or 17
  lb::v1::Scheduler scheduler = lb::v1::SCHEDULER_UNSPECIFIED;  // resolved
  bool scheduler_fallback = false;
  bool scheduler_port = false;
  // Resolved: UNSPECIFIED becomes SOURCE_IP_PORT with scheduler_flags.port,
  // else FIVE_TUPLE.
  lb::v1::HashInputs hash_inputs = lb::v1::HASH_INPUTS_FIVE_TUPLE;
  uint32_t maglev_table_size = 0;  // resolved (0 → kDefaultMaglevTableSize)
  uint64_t hash_seed = 0;          // as given; 0: the node derives one
  NormalForwarding forwarding;
  absl::Duration persistence_timeout;  // zero: no persistence
  int persistence_ipv4_prefix = 0;     // as given (0: a host)
  int persistence_ipv6_prefix = 0;
  // In config order; the sorry backend last when sorry_active.
  std::vector<NormalBackend> backends;
  // The sorry backend stands in for backends that are all out (see the
  // file comment).
  bool sorry_active = false;
};

struct NormalNode {
  std::string name;
  uint32_t weight = 1;  // 0 in the proto means 1
  // Every address of the local_addresses prefixes.
  std::set<IpAddress> local_addresses;
  bool has_local_v4 = false;
  bool has_local_v6 = false;
};

struct NormalConfig {
  uint64_t revision = 0;
  NormalNode node;
  std::vector<NormalService> services;  // in config order
};

struct NormalizeOptions {
  // False where no node is known (the controller checking services before
  // any node registered): FULLNAT is then not checked against
  // node.local_addresses.
  bool check_local_addresses = true;
};

absl::StatusOr<NormalConfig> NormalizeConfig(
    const lb::v1::ConfigSnapshot& config, const NormalizeOptions& options = {});

// SchedulerName: "rr", "wlc", "mh", ...; "?" for unknown values.
const char* SchedulerName(lb::v1::Scheduler scheduler);

// ForwardingName: "DR", "TUN", "NAT", "FULLNAT".
const char* ForwardingName(lb::v1::ForwardingMode mode);

}  // namespace anylb::config

#endif  // ANYLB_COMMON_CONFIG_NORMALIZE_H_
