#include "routing/announce/announcer.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/json.h"
#include "common/log.h"

namespace anylb::routing::announce {
namespace {

const char* Bool(bool b) { return b ? "true" : "false"; }

}  // namespace

Announcer::Announcer(AnnouncerOptions options, RouteHolder* routes,
                     Vtysh* vtysh)
    : options_(std::move(options)),
      routes_(routes),
      frr_(vtysh, options_.frr) {}

Announcer::~Announcer() { Stop(); }

void Announcer::SetConfig(AnnounceConfig config) {
  absl::MutexLock lock(&mu_);
  // A new admin_state in the file takes over from the admin endpoint.
  if (config.drained != config_.drained) admin_override_.reset();
  config_ = std::move(config);
  wake_ = true;
}

void Announcer::Drain() {
  absl::MutexLock lock(&mu_);
  admin_override_ = true;
  wake_ = true;
}

void Announcer::Undrain() {
  absl::MutexLock lock(&mu_);
  admin_override_ = false;
  wake_ = true;
}

bool Announcer::HasQuorum(const AnnounceService& service, bool had) const {
  uint64_t weight = 0;
  for (const AnnounceBackend& b : service.backends) {
    if (!b.enabled || b.weight == 0) continue;
    if (options_.health != nullptr &&
        !options_.health->IsHealthy(service.name, b)) {
      continue;
    }
    weight += b.weight;
  }
  uint64_t need =
      service.quorum_min_weight == 0 ? 1 : service.quorum_min_weight;
  if (!had) need += service.quorum_hysteresis;
  return weight >= need;
}

void Announcer::Step() {
  const absl::Time now = options_.clock();
  AnnounceConfig config;
  bool drained;
  bool override_set;
  {
    absl::MutexLock lock(&mu_);
    config = config_;
    drained = admin_override_.value_or(config_.drained);
    override_set = admin_override_.has_value();
  }
  ++steps_;

  // Liveness.
  bool live = true;
  absl::Duration idle;
  if (options_.oldest_progress) {
    idle = now - options_.oldest_progress();
    live = idle <= options_.liveness_timeout;
  }
  if (live != was_live_) {
    if (live) {
      LB_LOG(kInfo) << "dataplane live again: announcing the VIPs with quorum";
    } else {
      LB_LOG(kError) << "dataplane stalled (a worker made no progress for "
                     << idle << "): withdrawing every VIP";
    }
    was_live_ = live;
  }

  // Drain.
  if (drained && !was_drained_) {
    drain_started_ = now;
    LB_LOG(kInfo) << "draining: announcing at the drain weight for "
                  << config.drain_period << ", then withdrawing";
  } else if (!drained && was_drained_) {
    LB_LOG(kInfo) << "undrained: announcing at weight " << config.weight;
  }
  was_drained_ = drained;
  const bool drain_complete =
      drained && now >= drain_started_ + config.drain_period;

  // Quorum per service, then per VIP.
  std::map<std::string, bool> quorum;
  struct VipInputs {
    std::vector<std::string> with_quorum;
    std::vector<std::string> without;
    std::vector<uint32_t> communities;
  };
  std::map<IpAddress, VipInputs> vips;
  for (const AnnounceService& s : config.services) {
    auto it = quorum_.find(s.name);
    bool had = it == quorum_.end() ? true : it->second;
    bool has = HasQuorum(s, had);
    if (it != quorum_.end() && has != had) {
      LB_LOG(kInfo) << "service " << s.name << " (" << s.vip << "): quorum "
                    << (has ? "regained" : "lost");
    }
    quorum[s.name] = has;
    VipInputs& v = vips[s.vip];
    (has ? v.with_quorum : v.without).push_back(s.name);
    v.communities.insert(v.communities.end(), s.communities.begin(),
                         s.communities.end());
  }
  quorum_ = std::move(quorum);

  // FRR first.
  FrrIntent intent;
  intent.device = options_.device;
  intent.bandwidth_mbps = BandwidthForWeight(config.weight);
  intent.drained = drained;
  intent.drain_gshut = options_.drain_gshut;
  for (auto& [vip, v] : vips) {
    if (v.communities.empty()) continue;
    std::vector<uint32_t> c = v.communities;
    std::sort(c.begin(), c.end());
    c.erase(std::unique(c.begin(), c.end()), c.end());
    intent.communities[vip] = std::move(c);
  }
  (void)frr_.Sync(intent, now);  // Logged and counted inside.

  // Then routes.
  std::vector<VipState> states;
  for (const auto& [vip, v] : vips) {
    VipState st;
    st.vip = vip;
    if (!live) {
      st.reason = absl::StrCat("withdrawn: dataplane stalled (no progress for ",
                               absl::FormatDuration(idle), ")");
    } else if (v.with_quorum.empty()) {
      st.reason = absl::StrCat("withdrawn: no service has quorum (",
                               absl::StrJoin(v.without, ", "), ")");
    } else if (drain_complete) {
      st.reason = "withdrawn: node drained";
    } else {
      st.wanted = true;
      st.reason =
          drained ? absl::StrCat(
                        "draining: announced at the drain weight "
                        "until ",
                        absl::FormatTime(drain_started_ + config.drain_period))
                  : absl::StrCat("announced (quorum: ",
                                 absl::StrJoin(v.with_quorum, ", "), ")");
    }
    states.push_back(std::move(st));
  }
  std::set<IpAddress> wanted;
  for (const VipState& st : states) {
    if (st.wanted) wanted.insert(st.vip);
  }
  for (auto it = installed_.begin(); it != installed_.end();) {
    if (wanted.contains(*it)) {
      ++it;
      continue;
    }
    absl::Status status = routes_->Remove(*it);
    if (status.ok()) {
      LB_LOG(kInfo) << "VIP " << *it << " withdrawn";
      it = installed_.erase(it);
    } else {
      ++route_errors_;
      LB_LOG(kError) << status;
      ++it;
    }
  }
  for (const IpAddress& vip : wanted) {
    if (installed_.contains(vip)) continue;
    absl::Status status = routes_->Add(vip);
    if (status.ok()) {
      LB_LOG(kInfo) << "VIP " << vip << " announced";
      installed_.insert(vip);
    } else {
      ++route_errors_;
      LB_LOG(kError) << status;
    }
  }
  for (VipState& st : states) st.announced = installed_.contains(st.vip);

  // FULLNAT local addresses: live and not drained past the drain period,
  // whatever the quorum.
  std::vector<LocalAddressState> locals;
  std::map<std::string, IpPrefix> wanted_local;
  for (const IpPrefix& prefix : config.local_addresses) {
    LocalAddressState st;
    st.prefix = prefix;
    if (!live) {
      st.reason = absl::StrCat("withdrawn: dataplane stalled (no progress for ",
                               absl::FormatDuration(idle), ")");
    } else if (drain_complete) {
      st.reason = "withdrawn: node drained";
    } else {
      st.wanted = true;
      st.reason = drained ? "draining: announced until the drain completes "
                            "(replies of established FULLNAT flows)"
                          : "announced (FULLNAT local addresses)";
      wanted_local.emplace(prefix.ToString(), prefix);
    }
    locals.push_back(std::move(st));
  }
  for (auto it = installed_local_.begin(); it != installed_local_.end();) {
    if (wanted_local.contains(it->first)) {
      ++it;
      continue;
    }
    absl::Status status = routes_->RemovePrefix(it->second);
    if (status.ok()) {
      LB_LOG(kInfo) << "local addresses " << it->first << " withdrawn";
      it = installed_local_.erase(it);
    } else {
      ++route_errors_;
      LB_LOG(kError) << status;
      ++it;
    }
  }
  for (const auto& [key, prefix] : wanted_local) {
    if (installed_local_.contains(key)) continue;
    absl::Status status = routes_->AddPrefix(prefix);
    if (status.ok()) {
      LB_LOG(kInfo) << "local addresses " << key << " announced";
      installed_local_.emplace(key, prefix);
    } else {
      ++route_errors_;
      LB_LOG(kError) << status;
    }
  }
  for (LocalAddressState& st : locals) {
    st.announced = installed_local_.contains(st.prefix.ToString());
  }

  AnnounceStatus s;
  s.drained = drained;
  s.admin_override = override_set;
  s.drain_complete = drain_complete;
  s.drain_started = drained ? drain_started_ : absl::InfinitePast();
  s.weight = config.weight == 0 ? 1 : config.weight;
  s.bandwidth_mbps = drained ? kDrainBandwidthMbps : intent.bandwidth_mbps;
  s.dataplane_live = live;
  s.dataplane_idle = idle;
  s.frr_in_sync = frr_.in_sync();
  s.frr_apply_errors = frr_.apply_errors();
  s.frr_applies = frr_.applies();
  s.frr_last_error = s.frr_in_sync ? "" : frr_.last_error();
  s.route_errors = route_errors_;
  s.steps = steps_;
  s.vips = std::move(states);
  s.local_addresses = std::move(locals);
  absl::MutexLock lock(&mu_);
  status_ = std::move(s);
}

void Announcer::Start() {
  if (thread_.joinable()) return;
  {
    absl::MutexLock lock(&mu_);
    stop_ = false;
  }
  thread_ = std::thread([this] {
    while (true) {
      Step();
      absl::MutexLock lock(&mu_);
      auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stop_ || wake_;
      };
      mu_.AwaitWithTimeout(absl::Condition(&woken), options_.tick);
      if (stop_) return;
      wake_ = false;
    }
  });
}

void Announcer::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

AnnounceStatus Announcer::status() const {
  absl::MutexLock lock(&mu_);
  return status_;
}

std::string Announcer::StatusJson() const {
  AnnounceStatus s = status();
  std::string out = "{";
  absl::StrAppend(
      &out, "\"admin_state\":", JsonString(s.drained ? "drained" : "active"),
      ",\"admin_override\":", Bool(s.admin_override),
      ",\"drain_complete\":", Bool(s.drain_complete));
  if (s.drained) {
    absl::StrAppend(&out, ",\"drain_started\":",
                    JsonString(absl::FormatTime(s.drain_started)));
  }
  absl::StrAppend(
      &out, ",\"weight\":", s.weight, ",\"bandwidth_mbps\":", s.bandwidth_mbps,
      ",\"dataplane_live\":", Bool(s.dataplane_live),
      ",\"dataplane_idle_seconds\":", absl::ToDoubleSeconds(s.dataplane_idle),
      R"(,"frr":{"in_sync":)", Bool(s.frr_in_sync),
      ",\"applies\":", s.frr_applies, ",\"apply_errors\":", s.frr_apply_errors,
      ",\"last_error\":", JsonString(s.frr_last_error),
      "},\"route_errors\":", s.route_errors, ",\"vips\":[");
  for (size_t i = 0; i < s.vips.size(); ++i) {
    const VipState& v = s.vips[i];
    absl::StrAppend(
        &out, i == 0 ? "" : ",", "{\"vip\":", JsonString(v.vip.ToString()),
        ",\"announced\":", Bool(v.announced), ",\"wanted\":", Bool(v.wanted),
        ",\"reason\":", JsonString(v.reason), "}");
  }
  out += "],\"local_addresses\":[";
  for (size_t i = 0; i < s.local_addresses.size(); ++i) {
    const LocalAddressState& l = s.local_addresses[i];
    absl::StrAppend(&out, i == 0 ? "" : ",",
                    "{\"prefix\":", JsonString(l.prefix.ToString()),
                    ",\"announced\":", Bool(l.announced),
                    ",\"wanted\":", Bool(l.wanted),
                    ",\"reason\":", JsonString(l.reason), "}");
  }
  out += "]}\n";
  return out;
}

absl::Status Announcer::Collect(std::vector<metrics::MetricFamily>* out) const {
  using metrics::MetricFamily;
  using metrics::MetricType;
  AnnounceStatus s = status();
  MetricFamily announced("anylb_vip_announced",
                         "1 while the VIP's route is on the announce device "
                         "(FRR announces it), else 0.",
                         MetricType::kGauge);
  for (const VipState& v : s.vips) {
    announced.Add({{"vip", v.vip.ToString()}}, v.announced ? 1 : 0);
  }
  out->push_back(std::move(announced));
  MetricFamily local("anylb_local_address_announced",
                     "1 while the FULLNAT local-address prefix's route is on "
                     "the announce device (FRR announces it), else 0.",
                     MetricType::kGauge);
  for (const LocalAddressState& l : s.local_addresses) {
    local.Add({{"prefix", l.prefix.ToString()}}, l.announced ? 1 : 0);
  }
  out->push_back(std::move(local));
  MetricFamily admin("anylb_node_admin_state",
                     "The node's admin state: 1 active, 2 drained (as "
                     "lb.v1.NodeAdminState).",
                     MetricType::kGauge);
  admin.Add({}, s.drained ? 2 : 1);
  out->push_back(std::move(admin));
  MetricFamily weight("anylb_node_announce_bandwidth_mbps",
                      "The BGP link bandwidth announced (the node weight, "
                      "or the drain bandwidth while drained).",
                      MetricType::kGauge);
  weight.Add({}, s.bandwidth_mbps);
  out->push_back(std::move(weight));
  MetricFamily live("anylb_dataplane_live",
                    "1 while every worker makes progress (VIPs may be "
                    "announced), 0 while stalled (every VIP withdrawn).",
                    MetricType::kGauge);
  live.Add({}, s.dataplane_live ? 1 : 0);
  out->push_back(std::move(live));
  MetricFamily errors("anylb_frr_apply_errors_total",
                      "Failed attempts to read or change lbnode's part of "
                      "FRR's config through vtysh.",
                      MetricType::kCounter);
  errors.Add({}, s.frr_apply_errors);
  out->push_back(std::move(errors));
  MetricFamily applies("anylb_frr_applies_total",
                       "Changes sent to FRR through vtysh.",
                       MetricType::kCounter);
  applies.Add({}, s.frr_applies);
  out->push_back(std::move(applies));
  MetricFamily in_sync("anylb_frr_in_sync",
                       "1 when FRR runs lbnode's route-maps as wanted.",
                       MetricType::kGauge);
  in_sync.Add({}, s.frr_in_sync ? 1 : 0);
  out->push_back(std::move(in_sync));
  MetricFamily route_errors("anylb_vip_route_errors_total",
                            "Failed route additions/removals on the "
                            "announce device.",
                            MetricType::kCounter);
  route_errors.Add({}, s.route_errors);
  out->push_back(std::move(route_errors));
  return absl::OkStatus();
}

}  // namespace anylb::routing::announce
