// HealthMonitor (monitor.h): one thread runs the schedule; probes run on the
// Prober's threads and report back through OnResult.
//
// Ownership: HealthMonitor owns a State, which holds the monitor thread and
// a shared Core. The Core (targets, schedule, counters; all under Core::mu)
// is shared with every probe's `done` callback, so a callback that a prober
// destroys late never touches freed memory; the destructor still waits until
// no probe is in flight (monitor.h).
//
// A target's life: SetTargets gives it a generation number and a first due
// time (a random fraction of its interval from now). The loop pops due
// targets from a min-heap; with a free slot (in_flight < max_in_flight) it
// starts the probe, otherwise the target joins the `waiting` FIFO and
// probes_delayed counts it. A result (OnResult, on a prober thread) is
// matched by generation: a forgotten or replaced target's generation is gone
// and the result only frees its slot. The rise/fall machine runs under the
// lock; state changes are queued and the monitor thread logs them, calls
// on_change and run_command without the lock.

#include "lbnode/health/monitor.h"

#include <algorithm>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/log.h"
#include "google/protobuf/util/message_differencer.h"

namespace anylb::health {
namespace {

using lb::v1::HealthCheck;
using lb::v1::HealthState;
using metrics::MetricFamily;
using metrics::MetricType;

// Defaults of lb.v1.HealthCheck (health.proto).
constexpr absl::Duration kDefaultInterval = absl::Seconds(5);
constexpr absl::Duration kDefaultTimeout = absl::Seconds(2);
constexpr uint32_t kDefaultRise = 2;
constexpr uint32_t kDefaultFall = 3;
// Below this an interval is surely a typo (ms for s) and would only burn CPU.
constexpr absl::Duration kMinInterval = absl::Milliseconds(10);

std::string_view StateName(HealthState state) {
  switch (state) {
    case lb::v1::HEALTH_STATE_UP:
      return "up";
    case lb::v1::HEALTH_STATE_DOWN:
      return "down";
    default:
      return "unchecked";
  }
}

std::string KeyText(const BackendKey& key) {
  return absl::StrCat("service \"", key.service, "\" backend ",
                      key.backend.ToString());
}

// CheckText names the connect endpoint when it is not the backend itself.
std::string CheckText(const BackendKey& key, const Endpoint& connect) {
  if (connect == key.backend) return "";
  return absl::StrCat(" (checked at ", connect.ToString(), ")");
}

// Params are a check's effective timing and thresholds.
struct Params {
  absl::Duration interval;
  absl::Duration timeout;
  uint32_t rise = 0;
  uint32_t fall = 0;
};

// ToDuration converts a google.protobuf.Duration, rejecting the forms the
// proto documents as invalid (signs that differ, nanos out of range).
absl::StatusOr<absl::Duration> ToDuration(const google::protobuf::Duration& d) {
  if (d.nanos() <= -1000000000 || d.nanos() >= 1000000000 ||
      (d.seconds() > 0 && d.nanos() < 0) ||
      (d.seconds() < 0 && d.nanos() > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("{seconds: ", d.seconds(), ", nanos: ", d.nanos(),
                     "} is not a valid duration"));
  }
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

// Validate checks one target and returns its effective parameters; errors
// name the service, the backend and the field.
absl::StatusOr<Params> Validate(const CheckTarget& target) {
  const HealthCheck& check = target.check;
  const std::string where =
      absl::StrCat("health check of ", KeyText(target.key), ": ");
  if (target.key.service.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, "service: empty name"));
  }
  if (check.check_case() == HealthCheck::CHECK_NOT_SET) {
    return absl::InvalidArgumentError(absl::StrCat(
        where,
        "check: no kind set (set one of tcp, http, grpc, dns, udp, "
        "exec)"));
  }
  if (target.connect.port() == 0 && check.check_case() != HealthCheck::kExec) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, "connect ", target.connect.ToString(),
        ": port 0 (set health_check_port, or the backend's or the VIP's "
        "port)"));
  }
  Params p;
  p.interval = kDefaultInterval;
  if (check.has_interval()) {
    absl::StatusOr<absl::Duration> d = ToDuration(check.interval());
    if (!d.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "interval: ", d.status().message()));
    }
    p.interval = *d;
  }
  if (p.interval < kMinInterval) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, "interval ", absl::FormatDuration(p.interval),
                     " is below ", absl::FormatDuration(kMinInterval)));
  }
  p.timeout = kDefaultTimeout;
  if (check.has_timeout()) {
    absl::StatusOr<absl::Duration> d = ToDuration(check.timeout());
    if (!d.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "timeout: ", d.status().message()));
    }
    p.timeout = *d;
    if (p.timeout <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "timeout ", absl::FormatDuration(p.timeout),
                       " is not positive"));
    }
  }
  if (p.timeout >= p.interval) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, "timeout ", absl::FormatDuration(p.timeout),
        check.has_timeout() ? "" : " (the default)", " must be below interval ",
        absl::FormatDuration(p.interval),
        check.has_timeout() ? "" : ": set timeout"));
  }
  p.rise = check.rise() == 0 ? kDefaultRise : check.rise();
  p.fall = check.fall() == 0 ? kDefaultFall : check.fall();
  return p;
}

// Entry is one checked target and its state machine.
struct Entry {
  CheckTarget target;
  Params params;
  uint64_t generation = 0;
  BackendHealthStatus status;
  uint32_t passes_in_row = 0;
  uint32_t failures_in_row = 0;
  uint64_t up_transitions = 0;
  uint64_t down_transitions = 0;
  // When the next probe is due (valid while neither in flight nor waiting).
  absl::Time next_due;
  bool in_flight = false;
  bool waiting = false;
};

// Due is a schedule slot: a target (by generation) and when it is due.
struct Due {
  absl::Time due;
  uint64_t generation = 0;
};
// Later sorts first: std::push_heap with it makes a min-heap.
bool Later(const Due& a, const Due& b) { return a.due > b.due; }

// Event is a state or weight change to report outside the lock.
struct Event {
  HealthChange change;
  Endpoint connect;
  bool weight_only = false;
  std::optional<CommandRequest> command;
};

// Core: see the file comment.
struct Core : std::enable_shared_from_this<Core> {
  explicit Core(MonitorOptions o) : options(std::move(o)) {}

  // OnResult is a probe's `done`: frees its slot, and if the target is still
  // the one probed, runs the state machine and schedules its next probe.
  void OnResult(uint64_t generation, ProbeResult result);
  // Apply runs the rise/fall machine on one result (mu held).
  void Apply(Entry& e, const ProbeResult& result)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  void Push(Due due) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    heap.push_back(due);
    std::push_heap(heap.begin(), heap.end(), Later);
  }
  Due Pop() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::pop_heap(heap.begin(), heap.end(), Later);
    Due d = heap.back();
    heap.pop_back();
    return d;
  }
  Entry* Find(uint64_t generation) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    auto it = by_generation.find(generation);
    return it == by_generation.end() ? nullptr : it->second;
  }
  // Run is the monitor thread's loop.
  void Run();

  MonitorOptions options;  // Immutable after Create (callbacks cleared last).
  mutable absl::Mutex mu;
  absl::CondVar wake;  // Results, new targets, events, stop.
  bool stopping ABSL_GUARDED_BY(mu) = false;
  std::map<BackendKey, std::unique_ptr<Entry>> entries ABSL_GUARDED_BY(mu);
  absl::flat_hash_map<uint64_t, Entry*> by_generation ABSL_GUARDED_BY(mu);
  std::vector<Due> heap ABSL_GUARDED_BY(mu);
  std::deque<Due> waiting ABSL_GUARDED_BY(mu);
  size_t in_flight ABSL_GUARDED_BY(mu) = 0;
  uint64_t delayed ABSL_GUARDED_BY(mu) = 0;
  uint64_t next_generation ABSL_GUARDED_BY(mu) = 1;
  absl::BitGen rng ABSL_GUARDED_BY(mu);
  std::vector<Event> events ABSL_GUARDED_BY(mu);
};

void Core::OnResult(uint64_t generation, ProbeResult result) {
  absl::MutexLock lock(&mu);
  --in_flight;
  wake.Signal();
  Entry* e = Find(generation);
  if (e == nullptr) return;  // Forgotten or replaced: only the slot counts.
  e->in_flight = false;
  Apply(*e, result);
  Push({e->next_due, generation});
}

// WeightText: a dynamic weight for a log line ("none": the configured one).
std::string WeightText(const std::optional<uint32_t>& weight) {
  return weight.has_value() ? absl::StrCat(*weight) : "none";
}

void Core::Apply(Entry& e, const ProbeResult& result) {
  BackendHealthStatus& s = e.status;
  ++s.probes;
  const HealthState from = s.state;
  HealthState to = from;
  std::string reason;
  const std::optional<uint32_t> old_weight = s.dynamic_weight;
  if (result.passed) {
    e.failures_in_row = 0;
    ++e.passes_in_row;
    s.last_error.clear();
    s.dynamic_weight = result.dynamic_weight;
    if (from == lb::v1::HEALTH_STATE_UNSPECIFIED) {
      to = lb::v1::HEALTH_STATE_UP;
      reason = "first probe passed";
    } else if (from == lb::v1::HEALTH_STATE_DOWN &&
               e.passes_in_row >= e.params.rise) {
      to = lb::v1::HEALTH_STATE_UP;
      reason = absl::StrCat("passed ", e.passes_in_row,
                            e.passes_in_row == 1 ? " probe" : " probes");
    }
  } else {
    ++s.failures;
    e.passes_in_row = 0;
    ++e.failures_in_row;
    s.last_error = result.error.empty() ? "probe failed" : result.error;
    if (from == lb::v1::HEALTH_STATE_UNSPECIFIED ||
        (from == lb::v1::HEALTH_STATE_UP &&
         e.failures_in_row >= e.params.fall)) {
      to = lb::v1::HEALTH_STATE_DOWN;
      reason = s.last_error;
    }
  }
  if (to == from && s.dynamic_weight == old_weight) return;

  Event event;
  event.change.key = e.target.key;
  event.change.from = from;
  event.change.to = to;
  event.change.dynamic_weight = s.dynamic_weight;
  event.connect = e.target.connect;
  if (to == from) {
    event.weight_only = true;
    event.change.reason =
        absl::StrCat("dynamic weight ", WeightText(old_weight), " -> ",
                     WeightText(s.dynamic_weight));
  } else {
    event.change.reason = std::move(reason);
    s.state = to;
    s.last_change = absl::Now();
    ++s.transitions;
    if (to == lb::v1::HEALTH_STATE_UP) {
      ++e.up_transitions;
    } else {
      ++e.down_transitions;
    }
    const bool down = to == lb::v1::HEALTH_STATE_DOWN;
    const auto& argv =
        down ? e.target.check.notify_down() : e.target.check.notify_up();
    // UNSPECIFIED -> UP is no news (absent counts as up): no notify_up.
    const bool news = down || from == lb::v1::HEALTH_STATE_DOWN;
    if (news && !argv.empty() && options.run_command) {
      CommandRequest command;
      command.argv.assign(argv.begin(), argv.end());
      const BackendKey& key = e.target.key;
      command.env = {
          {"LB_SERVICE", key.service},
          {"LB_BACKEND_ADDRESS", key.backend.address().ToString()},
          {"LB_BACKEND_PORT", absl::StrCat(key.backend.port())},
          {"LB_CHECK_ADDRESS", e.target.connect.address().ToString()},
          {"LB_CHECK_PORT", absl::StrCat(e.target.connect.port())},
          {"LB_STATE", std::string(StateName(to))},
          {"LB_REASON", event.change.reason},
      };
      event.command = std::move(command);
    }
  }
  events.push_back(std::move(event));
  wake.Signal();
}

void Core::Run() {
  absl::MutexLock lock(&mu);
  while (!stopping) {
    if (!events.empty()) {
      std::vector<Event> batch;
      batch.swap(events);
      mu.Unlock();
      for (Event& ev : batch) {
        const HealthChange& c = ev.change;
        if (ev.weight_only) {
          LB_LOG(kInfo) << "health: " << KeyText(c.key) << ": " << c.reason;
        } else if (c.to == lb::v1::HEALTH_STATE_DOWN) {
          LB_LOG(kWarning) << "health: " << KeyText(c.key)
                           << CheckText(c.key, ev.connect) << ": "
                           << StateName(c.from) << " -> down: " << c.reason;
        } else {
          LB_LOG(kInfo) << "health: " << KeyText(c.key)
                        << CheckText(c.key, ev.connect) << ": "
                        << StateName(c.from) << " -> up: " << c.reason;
        }
        if (options.on_change) options.on_change(c);
        if (ev.command) options.run_command(std::move(*ev.command));
      }
      mu.Lock();
      continue;
    }

    // Start what is due, waiting targets first (they are the oldest).
    const absl::Time now = absl::Now();
    std::vector<std::pair<ProbeRequest, uint64_t>> starts;
    while (in_flight < options.max_in_flight) {
      Due d;
      if (!waiting.empty()) {
        d = waiting.front();
        waiting.pop_front();
      } else if (!heap.empty() && heap.front().due <= now) {
        d = Pop();
      } else {
        break;
      }
      Entry* e = Find(d.generation);
      if (e == nullptr) continue;
      e->waiting = false;
      e->in_flight = true;
      e->next_due = now + e->params.interval;
      ++in_flight;
      ProbeRequest request;
      request.target = e->target.connect;
      request.check = e->target.check;
      request.timeout = e->params.timeout;
      request.service = e->target.key.service;
      request.backend = e->target.key.backend;
      starts.emplace_back(std::move(request), d.generation);
    }
    // Due but no free slot: late, and counted.
    while (!heap.empty() && heap.front().due <= now) {
      Due d = Pop();
      Entry* e = Find(d.generation);
      if (e == nullptr) continue;
      e->waiting = true;
      waiting.push_back(d);
      ++delayed;
    }
    if (!starts.empty()) {
      // Start may call `done` at once, on this thread: not under mu.
      mu.Unlock();
      for (auto& [request, generation] : starts) {
        options.prober->Start(request, [core = shared_from_this(),
                                        generation](ProbeResult r) mutable {
          core->OnResult(generation, std::move(r));
        });
      }
      mu.Lock();
      continue;
    }
    const absl::Time deadline =
        heap.empty() ? absl::InfiniteFuture() : heap.front().due;
    wake.WaitWithDeadline(&mu, deadline);
  }
}

}  // namespace

struct HealthMonitor::State {
  std::shared_ptr<Core> core;
  std::thread thread;
};

absl::StatusOr<std::unique_ptr<HealthMonitor>> HealthMonitor::Create(
    MonitorOptions options) {
  if (options.prober == nullptr) {
    return absl::InvalidArgumentError(
        "health monitor: options.prober is null (pass the Checker)");
  }
  if (options.max_in_flight == 0) {
    return absl::InvalidArgumentError(
        "health monitor: options.max_in_flight is 0 (at least 1 probe must "
        "be able to run)");
  }
  std::unique_ptr<HealthMonitor> monitor(new HealthMonitor());
  monitor->state_ = std::make_unique<State>();
  monitor->state_->core = std::make_shared<Core>(std::move(options));
  monitor->state_->thread =
      std::thread([core = monitor->state_->core] { core->Run(); });
  return monitor;
}

HealthMonitor::~HealthMonitor() {
  if (state_ == nullptr) return;
  Core& core = *state_->core;
  {
    absl::MutexLock lock(&core.mu);
    core.stopping = true;
    core.wake.Signal();
  }
  state_->thread.join();
  absl::MutexLock lock(&core.mu);
  core.mu.Await(absl::Condition(
      +[](size_t* in_flight) { return *in_flight == 0; }, &core.in_flight));
  // A prober may destroy its last callback (holding the Core) later; the
  // user's callbacks are not needed any more.
  core.options.on_change = nullptr;
  core.options.run_command = nullptr;
}

absl::Status HealthMonitor::SetTargets(std::vector<CheckTarget> targets) {
  std::vector<Params> params;
  params.reserve(targets.size());
  std::set<BackendKey> keys;
  for (const CheckTarget& t : targets) {
    if (!keys.insert(t.key).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("health check of ", KeyText(t.key),
                       ": key: listed twice (one check per service and "
                       "backend)"));
    }
    absl::StatusOr<Params> p = Validate(t);
    if (!p.ok()) return p.status();
    params.push_back(*p);
  }

  Core& core = *state_->core;
  absl::MutexLock lock(&core.mu);
  const absl::Time now = absl::Now();
  std::map<BackendKey, std::unique_ptr<Entry>> entries;
  size_t kept = 0;
  for (size_t i = 0; i < targets.size(); ++i) {
    CheckTarget& t = targets[i];
    auto old = core.entries.find(t.key);
    if (old != core.entries.end() && old->second->target.connect == t.connect &&
        google::protobuf::util::MessageDifferencer::Equals(
            old->second->target.check, t.check)) {
      entries.emplace(t.key, std::move(old->second));
      ++kept;
      continue;
    }
    auto e = std::make_unique<Entry>();
    e->params = params[i];
    e->generation = core.next_generation++;
    e->status.key = t.key;
    // The first probe after a random fraction of the interval.
    e->next_due = now + absl::Uniform(core.rng, 0.0, 1.0) * e->params.interval;
    e->target = std::move(t);
    entries.emplace(e->target.key, std::move(e));
  }
  const size_t forgotten = core.entries.size() - kept;
  core.entries = std::move(entries);
  core.by_generation.clear();
  core.heap.clear();
  for (auto& [key, e] : core.entries) {
    core.by_generation[e->generation] = e.get();
    if (!e->in_flight && !e->waiting)
      core.heap.push_back({e->next_due, e->generation});
  }
  std::make_heap(core.heap.begin(), core.heap.end(), Later);
  std::erase_if(core.waiting, [&core](const Due& d) {
    return !core.by_generation.contains(d.generation);
  });
  core.wake.Signal();
  if (kept != core.entries.size() || forgotten != 0) {
    LB_LOG(kInfo) << "health: checking " << core.entries.size()
                  << " real servers (" << kept << " unchanged, "
                  << core.entries.size() - kept << " new or changed, "
                  << forgotten << " forgotten)";
  }
  return absl::OkStatus();
}

std::vector<BackendHealthStatus> HealthMonitor::Statuses() const {
  const Core& core = *state_->core;
  absl::MutexLock lock(&core.mu);
  std::vector<BackendHealthStatus> out;
  out.reserve(core.entries.size());
  for (const auto& [key, e] : core.entries) out.push_back(e->status);
  return out;
}

std::optional<BackendHealthStatus> HealthMonitor::Status(
    const BackendKey& key) const {
  const Core& core = *state_->core;
  absl::MutexLock lock(&core.mu);
  auto it = core.entries.find(key);
  if (it == core.entries.end()) return std::nullopt;
  return it->second->status;
}

absl::Status HealthMonitor::CollectMetrics(
    std::vector<metrics::MetricFamily>* out) const {
  MetricFamily state("anylb_health_state",
                     "This node's view of the real server: 1 up, 0 down, "
                     "-1 not yet checked.",
                     MetricType::kGauge);
  MetricFamily probes("anylb_health_probes_total",
                      "Completed health probes, by result.",
                      MetricType::kCounter);
  MetricFamily transitions("anylb_health_transitions_total",
                           "Health state changes, by new state.",
                           MetricType::kCounter);
  MetricFamily weight("anylb_health_dynamic_weight",
                      "Weight from the exec check's exit status (0: the "
                      "configured weight).",
                      MetricType::kGauge);
  MetricFamily in_flight("anylb_health_probes_in_flight",
                         "Health probes running now.", MetricType::kGauge);
  MetricFamily delayed("anylb_health_probes_delayed_total",
                       "Health probes that started late because "
                       "max_in_flight probes were running.",
                       MetricType::kCounter);
  {
    const Core& core = *state_->core;
    absl::MutexLock lock(&core.mu);
    for (const auto& [key, e] : core.entries) {
      const std::string backend = key.backend.ToString();
      auto labels = [&](std::string_view name, std::string_view value) {
        metrics::Labels l = {{"service", key.service}, {"backend", backend}};
        if (!name.empty()) l.emplace_back(name, value);
        return l;
      };
      const BackendHealthStatus& s = e->status;
      state.Add(labels("", ""), s.state == lb::v1::HEALTH_STATE_UP     ? 1
                                : s.state == lb::v1::HEALTH_STATE_DOWN ? 0
                                                                       : -1);
      probes.Add(labels("result", "pass"), s.probes - s.failures);
      probes.Add(labels("result", "fail"), s.failures);
      transitions.Add(labels("to", "up"), e->up_transitions);
      transitions.Add(labels("to", "down"), e->down_transitions);
      if (e->target.check.has_exec() &&
          e->target.check.exec().dynamic_weight()) {
        if (s.dynamic_weight.has_value()) {
          weight.Add(labels("", ""), *s.dynamic_weight);
        }
      }
    }
    in_flight.Add({}, core.in_flight);
    delayed.Add({}, core.delayed);
  }
  for (MetricFamily* f :
       {&state, &probes, &transitions, &weight, &in_flight, &delayed}) {
    absl::Status valid = f->Validate();
    if (!valid.ok()) return valid;
  }
  for (MetricFamily* f :
       {&state, &probes, &transitions, &weight, &in_flight, &delayed}) {
    out->push_back(std::move(*f));
  }
  return absl::OkStatus();
}

}  // namespace anylb::health
