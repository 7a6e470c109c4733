#include "lbnode/agent/dataplane_metrics.h"

#include <map>
#include <string>
#include <tuple>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "lbnode/dataplane/drop_reason.h"

namespace anylb::agent {
namespace {

using metrics::Labels;
using metrics::MetricFamily;
using metrics::MetricType;

// ServiceKey / BackendKey: the labels that identify a series.
using ServiceKey = std::tuple<std::string, std::string, uint16_t, std::string>;
using BackendKey = std::pair<std::string, std::string>;

struct BackendTotals {
  dataplane::TrafficCounters traffic;
  BackendConnections connections;
};

// Totals are the per-service and per-backend sums over workers.
struct Totals {
  std::map<ServiceKey, dataplane::TrafficCounters> services;
  std::map<BackendKey, BackendTotals> backends;
};

void AddTraffic(dataplane::TrafficCounters& sum,
                const dataplane::TrafficCounters& c) {
  sum.packets += c.packets;
  sum.bytes += c.bytes;
  sum.new_flows += c.new_flows;
}

absl::StatusOr<Totals> Sum(const DataplaneMetricsInput& input) {
  Totals totals;
  for (const WorkerMetricsInput& w : input.workers) {
    const size_t n = w.names ? w.names->size() : 0;
    auto mismatch = [&](std::string_view what, size_t got, size_t want) {
      return absl::FailedPreconditionError(
          absl::StrCat("worker ", w.worker, ": ", std::string(what), " for ",
                       got, " services/backends, its name table has ", want));
    };
    if (!w.services.empty() && w.services.size() != n) {
      return mismatch("service counters", w.services.size(), n);
    }
    if (!w.backends.empty() && w.backends.size() != n) {
      return mismatch("backend counters", w.backends.size(), n);
    }
    if (!w.connections.empty() && w.connections.size() != n) {
      return mismatch("connection counts", w.connections.size(), n);
    }
    for (size_t i = 0; i < n; ++i) {
      const ServiceNames& s = (*w.names)[i];
      dataplane::TrafficCounters& service =
          totals.services[{s.name, s.vip, s.port, s.protocol}];
      if (!w.services.empty()) AddTraffic(service, w.services[i]);
      const size_t nb = s.backends.size();
      if (!w.backends.empty() && w.backends[i].size() != nb) {
        return mismatch(absl::StrCat("service ", s.name, ": backend counters"),
                        w.backends[i].size(), nb);
      }
      if (!w.connections.empty() && w.connections[i].size() != nb) {
        return mismatch(absl::StrCat("service ", s.name, ": connection counts"),
                        w.connections[i].size(), nb);
      }
      for (size_t j = 0; j < nb; ++j) {
        BackendTotals& b = totals.backends[{s.name, s.backends[j]}];
        if (!w.backends.empty()) AddTraffic(b.traffic, w.backends[i][j]);
        if (!w.connections.empty()) {
          b.connections.active += w.connections[i][j].active;
          b.connections.inactive += w.connections[i][j].inactive;
        }
      }
    }
  }
  return totals;
}

Labels ServiceLabels(const ServiceKey& k) {
  return {{"service", std::get<0>(k)},
          {"vip", std::get<1>(k)},
          {"port", absl::StrCat(std::get<2>(k))},
          {"proto", std::get<3>(k)}};
}

std::string VipPort(const std::string& vip, uint16_t port) {
  return vip.find(':') != std::string::npos ? absl::StrCat("[", vip, "]:", port)
                                            : absl::StrCat(vip, ":", port);
}

}  // namespace

absl::StatusOr<std::vector<MetricFamily>> DataplaneFamilies(
    const DataplaneMetricsInput& input) {
  absl::StatusOr<Totals> totals = Sum(input);
  if (!totals.ok()) return totals.status();
  std::vector<MetricFamily> out;

  // Per worker.
  auto per_worker = [&](std::string name, std::string help, MetricType type,
                        auto value) {
    MetricFamily f(std::move(name), std::move(help), type);
    for (const WorkerMetricsInput& w : input.workers) {
      f.Add({{"worker", absl::StrCat(w.worker)}}, value(w));
    }
    out.push_back(std::move(f));
  };
  per_worker("anylb_rx_packets_total", "Frames the worker's engine received.",
             MetricType::kCounter,
             [](const WorkerMetricsInput& w) { return w.engine.rx_packets; });
  per_worker("anylb_rx_bytes_total", "Bytes of the frames received.",
             MetricType::kCounter,
             [](const WorkerMetricsInput& w) { return w.engine.rx_bytes; });
  per_worker("anylb_tx_packets_total",
             "Frames transmitted (forwarded, and ICMP errors to clients).",
             MetricType::kCounter,
             [](const WorkerMetricsInput& w) { return w.engine.tx_packets; });
  per_worker("anylb_tx_bytes_total", "Bytes of the frames transmitted.",
             MetricType::kCounter,
             [](const WorkerMetricsInput& w) { return w.engine.tx_bytes; });
  per_worker("anylb_pass_packets_total",
             "Frames handed to the kernel (not for a VIP).",
             MetricType::kCounter,
             [](const WorkerMetricsInput& w) { return w.engine.pass_packets; });
  per_worker(
      "anylb_icmp_too_big_sent_total",
      "ICMP fragmentation-needed / packet-too-big replies sent to clients.",
      MetricType::kCounter,
      [](const WorkerMetricsInput& w) { return w.engine.icmp_too_big_sent; });
  per_worker("anylb_icmp_too_big_suppressed_total",
             "ICMP too-big replies suppressed by the rate limit.",
             MetricType::kCounter, [](const WorkerMetricsInput& w) {
               return w.engine.icmp_too_big_suppressed;
             });
  per_worker("anylb_flows_rescheduled_total",
             "Flows moved to another backend because theirs left the service.",
             MetricType::kCounter, [](const WorkerMetricsInput& w) {
               return w.engine.flows_rescheduled;
             });
  per_worker("anylb_flows_reused_total",
             "New connections (SYN) on the tuple of a closed flow, or of an "
             "opening flow whose backend takes no new flows, scheduled afresh.",
             MetricType::kCounter,
             [](const WorkerMetricsInput& w) { return w.engine.flows_reused; });
  per_worker("anylb_flows", "Entries in the worker's flow table.",
             MetricType::kGauge,
             [](const WorkerMetricsInput& w) { return w.flows; });

  MetricFamily drops("anylb_drops_total",
                     "Frames dropped, by worker and reason "
                     "(lbnode/dataplane/drop_reason.h).",
                     MetricType::kCounter);
  for (const WorkerMetricsInput& w : input.workers) {
    for (size_t r = 1; r < dataplane::kDropReasonCount; ++r) {
      drops.Add({{"worker", absl::StrCat(w.worker)},
                 {"reason", std::string(dataplane::DropReasonName(
                                static_cast<dataplane::DropReason>(r)))}},
                w.engine.drops[r]);
    }
  }
  out.push_back(std::move(drops));

  // Per service.
  auto per_service = [&](std::string name, std::string help, auto value) {
    MetricFamily f(std::move(name), std::move(help), MetricType::kCounter);
    for (const auto& [key, c] : totals->services) {
      f.Add(ServiceLabels(key), value(c));
    }
    out.push_back(std::move(f));
  };
  per_service("anylb_service_packets_total",
              "Packets forwarded for the service (all workers).",
              [](const dataplane::TrafficCounters& c) { return c.packets; });
  per_service("anylb_service_bytes_total",
              "Bytes forwarded for the service (frames as received).",
              [](const dataplane::TrafficCounters& c) { return c.bytes; });
  per_service("anylb_service_new_flows_total",
              "Flows the service's scheduler placed.",
              [](const dataplane::TrafficCounters& c) { return c.new_flows; });

  // Per backend.
  auto per_backend = [&](std::string name, std::string help, MetricType type,
                         auto value) {
    MetricFamily f(std::move(name), std::move(help), type);
    for (const auto& [key, b] : totals->backends) {
      f.Add({{"service", key.first}, {"backend", key.second}}, value(b));
    }
    out.push_back(std::move(f));
  };
  per_backend("anylb_backend_packets_total",
              "Packets forwarded to the backend.", MetricType::kCounter,
              [](const BackendTotals& b) { return b.traffic.packets; });
  per_backend("anylb_backend_bytes_total", "Bytes forwarded to the backend.",
              MetricType::kCounter,
              [](const BackendTotals& b) { return b.traffic.bytes; });
  per_backend("anylb_backend_new_flows_total",
              "Flows scheduled to the backend.", MetricType::kCounter,
              [](const BackendTotals& b) { return b.traffic.new_flows; });
  per_backend("anylb_backend_active_connections",
              "Established flows on the backend (IPVS ActiveConn), this node.",
              MetricType::kGauge,
              [](const BackendTotals& b) { return b.connections.active; });
  per_backend(
      "anylb_backend_inactive_connections",
      "Other flows on the backend (IPVS InActConn: half-open, closing, UDP).",
      MetricType::kGauge,
      [](const BackendTotals& b) { return b.connections.inactive; });

  // Config.
  MetricFamily revision("anylb_config_revision",
                        "Revision of the config the dataplane runs.",
                        MetricType::kGauge);
  revision.Add({}, input.config_revision);
  out.push_back(std::move(revision));
  MetricFamily reloads("anylb_config_reloads_total",
                       "Configs applied since the node started.",
                       MetricType::kCounter);
  reloads.Add({}, input.config_reloads);
  out.push_back(std::move(reloads));
  MetricFamily failures(
      "anylb_config_reload_failures_total",
      "Configs rejected (invalid) since the node started; the previous one "
      "stays in force.",
      MetricType::kCounter);
  failures.Add({}, input.config_reload_failures);
  out.push_back(std::move(failures));
  return out;
}

metrics::CollectFn DataplaneCollector(
    std::function<absl::StatusOr<DataplaneMetricsInput>()> source) {
  return [source = std::move(source)](std::vector<MetricFamily>* out) {
    absl::StatusOr<DataplaneMetricsInput> input = source();
    if (!input.ok()) return input.status();
    absl::StatusOr<std::vector<MetricFamily>> families =
        DataplaneFamilies(*input);
    if (!families.ok()) return families.status();
    for (MetricFamily& f : *families) out->push_back(std::move(f));
    return absl::OkStatus();
  };
}

std::string FormatTextDump(const DataplaneMetricsInput& input) {
  std::string out = absl::StrCat(
      "config: revision ", input.config_revision, ", ", input.config_reloads,
      " reloads, ", input.config_reload_failures, " reload failures\n");
  for (const WorkerMetricsInput& w : input.workers) {
    const dataplane::EngineCounters& e = w.engine;
    absl::StrAppend(&out, "worker ", w.worker, ": rx ", e.rx_packets,
                    " packets ", e.rx_bytes, " bytes, tx ", e.tx_packets,
                    " packets ", e.tx_bytes, " bytes, passed ", e.pass_packets,
                    ", dropped ", e.drop_packets, ", flows ", w.flows, "\n");
    std::string reasons;
    for (size_t r = 1; r < dataplane::kDropReasonCount; ++r) {
      if (e.drops[r] == 0) continue;
      absl::StrAppend(&reasons, reasons.empty() ? "" : ", ",
                      std::string(dataplane::DropReasonName(
                          static_cast<dataplane::DropReason>(r))),
                      " ", e.drops[r]);
    }
    if (!reasons.empty()) absl::StrAppend(&out, "  drops: ", reasons, "\n");
    if (e.icmp_too_big_sent + e.icmp_too_big_suppressed + e.flows_rescheduled !=
        0) {
      absl::StrAppend(&out, "  icmp too big: ", e.icmp_too_big_sent, " sent, ",
                      e.icmp_too_big_suppressed,
                      " suppressed; flows rescheduled: ", e.flows_rescheduled,
                      "\n");
    }
  }
  absl::StatusOr<Totals> totals = Sum(input);
  if (!totals.ok()) {
    absl::StrAppend(&out, "services: ", totals.status().ToString(), "\n");
    return out;
  }
  for (const auto& [key, c] : totals->services) {
    const auto& [name, vip, port, proto] = key;
    absl::StrAppend(&out, "service ", name, " ", VipPort(vip, port), "/", proto,
                    ": ", c.packets, " packets, ", c.bytes, " bytes, ",
                    c.new_flows, " new flows\n");
    for (auto it = totals->backends.lower_bound({name, ""});
         it != totals->backends.end() && it->first.first == name; ++it) {
      const BackendTotals& b = it->second;
      absl::StrAppend(&out, "  backend ", it->first.second, ": ",
                      b.traffic.packets, " packets, ", b.traffic.bytes,
                      " bytes, ", b.traffic.new_flows, " new flows, ",
                      b.connections.active, " active, ", b.connections.inactive,
                      " inactive\n");
    }
  }
  return out;
}

}  // namespace anylb::agent
