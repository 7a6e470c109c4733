#include "lbnode/dataplane/engine_fuzz_snapshot.h"

#include <cstdlib>
#include <utility>
#include <vector>

namespace anylb::dataplane::fuzz {
namespace {

IpAddress Ip(const char* text) { return IpAddress::Parse(text).value(); }

ServiceConfig Service(const char* vip, uint16_t port, uint8_t protocol,
                      ForwardingMode mode, TunnelType tunnel,
                      const std::vector<const char*>& backends,
                      uint16_t backend_port) {
  ServiceConfig s;
  s.vip = Ip(vip);
  s.port = port;
  s.protocol = protocol;
  s.mode = mode;
  s.tunnel = tunnel;
  s.scheduler.maglev_table_size = 251;
  uint8_t m = 0x21;
  for (const char* b : backends) {
    BackendConfig bc;
    bc.endpoint = Endpoint(Ip(b), backend_port);
    bc.mac = {0x02, 0, 0, 0, 0, m++};
    s.backends.push_back(bc);
  }
  return s;
}

}  // namespace

std::shared_ptr<const EngineSnapshot> FuzzSnapshot() {
  NodeConfig node;
  node.mac = {0x02, 0, 0, 0, 0, 0x02};
  node.tunnel_source_v4 = Ip("192.0.2.254");
  node.has_tunnel_source_v4 = true;
  node.tunnel_source_v6 = Ip("2001:db8:ff::fe");
  node.has_tunnel_source_v6 = true;
  node.mtu = 1500;
  node.local_addresses = {Ip(kLocal4), Ip(kLocal6)};
  node.local_port_min = kLocalPortMin;
  node.local_port_max = kLocalPortMin + 63;  // Small: exhaustion is reachable.
  const ForwardingMode dr = ForwardingMode::kDr;
  const ForwardingMode tun = ForwardingMode::kTun;
  const ForwardingMode nat = ForwardingMode::kNat;
  const ForwardingMode fnat = ForwardingMode::kFullNat;
  const TunnelType ipip = TunnelType::kIpip;
  const TunnelType gue = TunnelType::kGue;
  std::vector<ServiceConfig> services = {
      Service(kVip4, 80, 6, dr, ipip, {"192.0.2.21", "192.0.2.22"}, 80),
      Service(kVip4, 53, 17, tun, ipip, {"192.0.2.21", "192.0.2.22"}, 53),
      Service(kVip4, 0, 6, tun, gue, {"2001:db8:2::21"}, 0),
      Service(kVip6, 80, 6, tun, ipip, {"2001:db8:2::21", "2001:db8:2::22"},
              80),
      Service(kVip6, 0, 17, tun, gue, {"192.0.2.21"}, 0),
      Service(kVip6, 443, 6, dr, ipip, {"2001:db8:2::23"}, 443),
  };
  for (uint8_t proto : {uint8_t{6}, uint8_t{17}}) {
    services.push_back(Service(kVip4, kNatPort, proto, nat, ipip,
                               {kNatBackend4}, kBackendPort));
    services.push_back(Service(kVip6, kNatPort, proto, nat, ipip,
                               {kNatBackend6}, kBackendPort));
    services.push_back(Service(kVip4, kFullNatPort, proto, fnat, ipip,
                               {kFullNatBackend4}, kBackendPort));
    services.push_back(Service(kVip6, kFullNatPort, proto, fnat, ipip,
                               {kFullNatBackend6}, kBackendPort));
  }
  // Persistence on one service, so the fuzzer reaches it too.
  services.back().persistence = scheduler::PersistencePolicy::Create(
                                    kFullNatPort, absl::Seconds(300), 24, 64)
                                    .value();
  auto snap = EngineSnapshot::Create(node, std::move(services));
  if (!snap.ok()) std::abort();
  return *snap;
}

}  // namespace anylb::dataplane::fuzz
