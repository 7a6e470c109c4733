// engine_fuzz: Parse + Engine::Process on fuzzed frames, against a fixed
// snapshot with DR and TUN (IPIP, IP6IP6, GUE) services on the VIPs the
// sample frames (and so the seed corpus, testdata/parser_corpus) use. Each
// input gets a fresh engine (reproducible) and is processed twice, so the
// second pass takes the flow-table hit path. Checks: the verdict stays in
// the buffer, a drop has a reason and a transmit has none.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "absl/time/time.h"
#include "lbnode/dataplane/config.h"
#include "lbnode/dataplane/engine.h"

namespace anylb::dataplane {
namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

class AlwaysResolver : public NextHopResolver {
 public:
  bool Resolve(const IpAddress&, Mac* mac) override {
    *mac = {0x02, 0, 0, 0, 0, 0x31};
    return true;
  }
};

IpAddress Ip(const char* text) { return IpAddress::Parse(text).value(); }

ServiceConfig Service(const char* vip, uint16_t port, uint8_t protocol,
                      ForwardingMode mode, TunnelType tunnel,
                      std::vector<const char*> backends) {
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
    bc.endpoint = Endpoint(Ip(b), port);
    bc.mac = {0x02, 0, 0, 0, 0, m++};
    s.backends.push_back(bc);
  }
  return s;
}

std::shared_ptr<const EngineSnapshot> Snapshot() {
  NodeConfig node;
  node.mac = {0x02, 0, 0, 0, 0, 0x02};
  node.tunnel_source_v4 = Ip("192.0.2.254");
  node.has_tunnel_source_v4 = true;
  node.tunnel_source_v6 = Ip("2001:db8:ff::fe");
  node.has_tunnel_source_v6 = true;
  node.mtu = 1500;
  std::vector<ServiceConfig> services = {
      Service("198.51.100.10", 80, 6, ForwardingMode::kDr, TunnelType::kIpip,
              {"192.0.2.21", "192.0.2.22"}),
      Service("198.51.100.10", 53, 17, ForwardingMode::kTun, TunnelType::kIpip,
              {"192.0.2.21", "192.0.2.22"}),
      Service("198.51.100.10", 0, 6, ForwardingMode::kTun, TunnelType::kGue,
              {"2001:db8:2::21"}),
      Service("2001:db8:100::10", 80, 6, ForwardingMode::kTun,
              TunnelType::kIpip, {"2001:db8:2::21", "2001:db8:2::22"}),
      Service("2001:db8:100::10", 0, 17, ForwardingMode::kTun, TunnelType::kGue,
              {"192.0.2.21"}),
      Service("2001:db8:100::10", 443, 6, ForwardingMode::kDr,
              TunnelType::kIpip, {"2001:db8:2::23"}),
  };
  auto snap = EngineSnapshot::Create(node, std::move(services));
  Check(snap.ok());
  return *snap;
}

}  // namespace
}  // namespace anylb::dataplane

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace anylb::dataplane;
  static AlwaysResolver resolver;
  static const std::shared_ptr<const EngineSnapshot> snapshot = Snapshot();
  if (size > 9000) return 0;
  EngineOptions options;
  options.flow_table.capacity = 64;
  options.flow_table.seed = 1;
  auto engine = Engine::Create(snapshot, &resolver, options);
  Check(engine.ok());
  constexpr size_t kHeadroom = 64;
  std::vector<uint8_t> buffer(kHeadroom + size + 128);
  const absl::Time now = absl::FromUnixSeconds(1700000000);
  for (int pass = 0; pass < 2; ++pass) {
    std::fill(buffer.begin(), buffer.end(), 0);
    if (size > 0) std::memcpy(buffer.data() + kHeadroom, data, size);
    const Verdict v = (*engine)->Process(buffer, kHeadroom, size, now);
    Check(size_t{v.offset} + v.length <= buffer.size());
    switch (v.action) {
      case Action::kDrop:
        Check(v.drop_reason != DropReason::kNone);
        break;
      case Action::kTransmit:
        Check(v.drop_reason == DropReason::kNone);
        Check(v.length >= 14);
        break;
      case Action::kPass:
        Check(v.offset == kHeadroom && v.length == size);
        break;
    }
  }
  const EngineCounters& c = (*engine)->counters();
  Check(c.rx_packets == 2);
  Check(c.tx_packets + c.pass_packets + c.drop_packets == 2);
  return 0;
}
