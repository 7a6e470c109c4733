// Tests of HealthMonitor. The state-machine tests feed it through a
// ScriptedProber whose answers the test decides (the monitor's input, held
// until the test completes each probe); SocketProberTest runs the real
// SocketProber against a TCP listener on 127.0.0.1.

#include "lbnode/health/monitor.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lbnode/health/socket_prober.h"

namespace anylb::health {
namespace {

using ::anylb::status_testing::IsOk;
using ::anylb::status_testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

constexpr auto kUp = lb::v1::HEALTH_STATE_UP;
constexpr auto kDown = lb::v1::HEALTH_STATE_DOWN;
constexpr auto kUnchecked = lb::v1::HEALTH_STATE_UNSPECIFIED;

// Eventually polls `f` until it is true or `limit` passes (a deadline for a
// wait, never an assertion about speed).
template <typename F>
bool Eventually(F f, absl::Duration limit = absl::Seconds(20)) {
  const absl::Time deadline = absl::Now() + limit;
  while (!f()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

Endpoint Ep(std::string_view text) { return *Endpoint::Parse(text); }

ProbeResult Pass(std::optional<uint32_t> weight = std::nullopt) {
  ProbeResult r;
  r.passed = true;
  r.dynamic_weight = weight;
  return r;
}

ProbeResult Fail(std::string error) {
  ProbeResult r;
  r.error = std::move(error);
  return r;
}

// ScriptedProber holds every probe until the test completes it (Complete)
// or, in auto mode, answers each at once on its own thread with the
// target's answer (SetAnswer; default pass). It records every request and
// the peak number of probes running at once.
class ScriptedProber : public Prober {
 public:
  ScriptedProber() : worker_([this] { Run(); }) {}
  ~ScriptedProber() override {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    worker_.join();
    // probe.h: the prober's end completes what is left.
    std::deque<HeldProbe> left;
    {
      absl::MutexLock lock(&mu_);
      left.swap(held_);
    }
    for (HeldProbe& h : left) std::move(h.done)(Fail("checker stopped"));
  }

  void Start(const ProbeRequest& request, ProbeDone done) override {
    absl::MutexLock lock(&mu_);
    requests_.push_back(request);
    starts_.emplace_back(request.target, absl::Now());
    held_.push_back({request.target, std::move(done)});
    ++running_;
    peak_ = std::max(peak_, running_);
  }

  void SetAuto(bool on) {
    absl::MutexLock lock(&mu_);
    auto_ = on;
  }
  void SetAnswer(const Endpoint& target, ProbeResult result) {
    absl::MutexLock lock(&mu_);
    answers_[target] = std::move(result);
  }

  // Complete waits for a held probe of `target` and completes the oldest
  // with `result`, on the calling thread.
  [[nodiscard]] bool Complete(const Endpoint& target, ProbeResult result) {
    if (!Eventually([&] { return Held(target) > 0; })) return false;
    ProbeDone done;
    {
      absl::MutexLock lock(&mu_);
      auto it =
          std::find_if(held_.begin(), held_.end(),
                       [&](const HeldProbe& h) { return h.target == target; });
      if (it == held_.end()) return false;
      done = std::move(it->done);
      held_.erase(it);
      --running_;
    }
    std::move(done)(std::move(result));
    return true;
  }

  size_t Held(const Endpoint& target) {
    absl::MutexLock lock(&mu_);
    return std::count_if(held_.begin(), held_.end(), [&](const HeldProbe& h) {
      return h.target == target;
    });
  }
  size_t HeldTotal() {
    absl::MutexLock lock(&mu_);
    return held_.size();
  }
  size_t Started(const Endpoint& target) {
    absl::MutexLock lock(&mu_);
    return std::count_if(starts_.begin(), starts_.end(),
                         [&](const auto& s) { return s.first == target; });
  }
  std::vector<absl::Time> StartTimes(const Endpoint& target) {
    absl::MutexLock lock(&mu_);
    std::vector<absl::Time> out;
    for (const auto& [t, when] : starts_) {
      if (t == target) out.push_back(when);
    }
    return out;
  }
  std::vector<ProbeRequest> Requests() {
    absl::MutexLock lock(&mu_);
    return requests_;
  }
  size_t peak() {
    absl::MutexLock lock(&mu_);
    return peak_;
  }

 private:
  struct HeldProbe {
    Endpoint target;
    ProbeDone done;
  };

  void Run() {
    absl::MutexLock lock(&mu_);
    while (true) {
      mu_.Await(absl::Condition(
          +[](ScriptedProber* p) {
            return p->stop_ || (p->auto_ && !p->held_.empty());
          },
          this));
      if (stop_) return;
      HeldProbe h = std::move(held_.front());
      held_.pop_front();
      --running_;
      auto it = answers_.find(h.target);
      ProbeResult result = it == answers_.end() ? Pass() : it->second;
      mu_.Unlock();
      std::move(h.done)(std::move(result));
      mu_.Lock();
    }
  }

  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool auto_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<HeldProbe> held_ ABSL_GUARDED_BY(mu_);
  std::map<Endpoint, ProbeResult> answers_ ABSL_GUARDED_BY(mu_);
  std::vector<ProbeRequest> requests_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<Endpoint, absl::Time>> starts_ ABSL_GUARDED_BY(mu_);
  size_t running_ ABSL_GUARDED_BY(mu_) = 0;
  size_t peak_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread worker_;
};

// Recorder keeps what on_change and run_command received.
class Recorder {
 public:
  void OnChange(const HealthChange& c) {
    absl::MutexLock lock(&mu_);
    changes_.push_back(c);
  }
  void OnCommand(CommandRequest c) {
    absl::MutexLock lock(&mu_);
    commands_.push_back(std::move(c));
  }
  std::vector<HealthChange> changes() {
    absl::MutexLock lock(&mu_);
    return changes_;
  }
  std::vector<CommandRequest> commands() {
    absl::MutexLock lock(&mu_);
    return commands_;
  }
  // WaitChanges waits until at least `n` changes arrived.
  [[nodiscard]] bool WaitChanges(size_t n) {
    return Eventually([&] { return changes().size() >= n; });
  }

 private:
  absl::Mutex mu_;
  std::vector<HealthChange> changes_ ABSL_GUARDED_BY(mu_);
  std::vector<CommandRequest> commands_ ABSL_GUARDED_BY(mu_);
};

// TcpCheck: a TCP check every `interval` (timeout half of it).
lb::v1::HealthCheck TcpCheck(absl::Duration interval = absl::Milliseconds(20),
                             uint32_t rise = 2, uint32_t fall = 3) {
  lb::v1::HealthCheck c;
  c.mutable_tcp();
  const int64_t ms = absl::ToInt64Milliseconds(interval);
  c.mutable_interval()->set_seconds(ms / 1000);
  c.mutable_interval()->set_nanos(static_cast<int32_t>(ms % 1000) * 1000000);
  const int64_t half = ms / 2;
  c.mutable_timeout()->set_seconds(half / 1000);
  c.mutable_timeout()->set_nanos(static_cast<int32_t>(half % 1000) * 1000000);
  c.set_rise(rise);
  c.set_fall(fall);
  return c;
}

CheckTarget Target(std::string service, std::string backend,
                   lb::v1::HealthCheck check = TcpCheck()) {
  CheckTarget t;
  t.key = {std::move(service), Ep(backend)};
  t.connect = t.key.backend;
  t.check = std::move(check);
  return t;
}

// Fixture: a monitor over a ScriptedProber, with a Recorder. TearDown
// answers whatever is still held so the monitor's destructor can finish.
class MonitorTest : public ::testing::Test {
 protected:
  void Make(size_t max_in_flight = 64) {
    MonitorOptions o;
    o.prober = &prober_;
    o.max_in_flight = max_in_flight;
    o.on_change = [this](const HealthChange& c) { recorder_.OnChange(c); };
    o.run_command = [this](CommandRequest c) {
      recorder_.OnCommand(std::move(c));
    };
    absl::StatusOr<std::unique_ptr<HealthMonitor>> m =
        HealthMonitor::Create(std::move(o));
    ASSERT_THAT(m, IsOk());
    monitor_ = std::move(*m);
  }
  void TearDown() override {
    prober_.SetAuto(true);
    monitor_.reset();
  }
  BackendHealthStatus StatusOf(const CheckTarget& t) {
    std::optional<BackendHealthStatus> s = monitor_->Status(t.key);
    EXPECT_TRUE(s.has_value()) << t.key.service;
    return s.value_or(BackendHealthStatus{});
  }
  // The text of the monitor's families, validated.
  std::string MetricsText() {
    std::vector<metrics::MetricFamily> families;
    EXPECT_THAT(monitor_->CollectMetrics(&families), IsOk());
    std::string text;
    for (const metrics::MetricFamily& f : families) {
      EXPECT_THAT(f.Validate(), IsOk()) << f.name();
      f.AppendText(&text);
    }
    return text;
  }

  ScriptedProber prober_;
  Recorder recorder_;
  std::unique_ptr<HealthMonitor> monitor_;
};

TEST(HealthMonitorCreate, RejectsNullProberAndZeroInFlight) {
  EXPECT_THAT(
      HealthMonitor::Create({}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("prober")));
  ScriptedProber prober;
  MonitorOptions o;
  o.prober = &prober;
  o.max_in_flight = 0;
  EXPECT_THAT(
      HealthMonitor::Create(std::move(o)),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_in_flight")));
}

TEST_F(MonitorTest, FirstResultDecidesAtOnce) {
  Make();
  CheckTarget alive = Target("web", "192.0.2.1:80");
  CheckTarget dead = Target("web", "192.0.2.2:80");
  ASSERT_THAT(monitor_->SetTargets({alive, dead}), IsOk());
  EXPECT_EQ(StatusOf(alive).state, kUnchecked);
  EXPECT_EQ(StatusOf(alive).last_change, absl::InfinitePast());

  ASSERT_TRUE(prober_.Complete(alive.connect, Pass()));
  ASSERT_TRUE(prober_.Complete(dead.connect, Fail("connect: refused")));
  // One result each, although rise = 2 and fall = 3.
  BackendHealthStatus a = StatusOf(alive);
  EXPECT_EQ(a.state, kUp);
  EXPECT_EQ(a.probes, 1u);
  EXPECT_EQ(a.transitions, 1u);
  EXPECT_NE(a.last_change, absl::InfinitePast());
  BackendHealthStatus d = StatusOf(dead);
  EXPECT_EQ(d.state, kDown);
  EXPECT_EQ(d.probes, 1u);
  EXPECT_EQ(d.failures, 1u);
  EXPECT_EQ(d.last_error, "connect: refused");

  ASSERT_TRUE(recorder_.WaitChanges(2));
  std::vector<HealthChange> changes = recorder_.changes();
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[0].key, alive.key);
  EXPECT_EQ(changes[0].from, kUnchecked);
  EXPECT_EQ(changes[0].to, kUp);
  EXPECT_EQ(changes[0].reason, "first probe passed");
  EXPECT_EQ(changes[1].key, dead.key);
  EXPECT_EQ(changes[1].from, kUnchecked);
  EXPECT_EQ(changes[1].to, kDown);
  EXPECT_EQ(changes[1].reason, "connect: refused");
}

TEST_F(MonitorTest, FallFailuresTakeItDownRisePassesBringItBack) {
  Make();
  CheckTarget t = Target("web", "192.0.2.1:80",
                         TcpCheck(absl::Milliseconds(20),
                                  /*rise=*/2,
                                  /*fall=*/3));
  ASSERT_THAT(monitor_->SetTargets({t}), IsOk());
  ASSERT_TRUE(prober_.Complete(t.connect, Pass()));
  EXPECT_EQ(StatusOf(t).state, kUp);

  ASSERT_TRUE(prober_.Complete(t.connect, Fail("timed out after 10ms")));
  ASSERT_TRUE(prober_.Complete(t.connect, Fail("timed out after 10ms")));
  BackendHealthStatus s = StatusOf(t);
  EXPECT_EQ(s.state, kUp) << "2 failures of fall 3";
  EXPECT_EQ(s.last_error, "timed out after 10ms");
  // A pass in between starts the count again.
  ASSERT_TRUE(prober_.Complete(t.connect, Pass()));
  EXPECT_EQ(StatusOf(t).last_error, "");
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(prober_.Complete(t.connect, Fail("connect: refused")));
  }
  EXPECT_EQ(StatusOf(t).state, kUp);
  ASSERT_TRUE(prober_.Complete(t.connect, Fail("connect: reset")));
  s = StatusOf(t);
  EXPECT_EQ(s.state, kDown);
  EXPECT_EQ(s.last_error, "connect: reset");
  EXPECT_EQ(s.transitions, 2u);

  ASSERT_TRUE(prober_.Complete(t.connect, Pass()));
  EXPECT_EQ(StatusOf(t).state, kDown) << "1 pass of rise 2";
  ASSERT_TRUE(prober_.Complete(t.connect, Fail("connect: refused")));
  ASSERT_TRUE(prober_.Complete(t.connect, Pass()));
  EXPECT_EQ(StatusOf(t).state, kDown) << "the failure reset the count";
  ASSERT_TRUE(prober_.Complete(t.connect, Pass()));
  s = StatusOf(t);
  EXPECT_EQ(s.state, kUp);
  EXPECT_EQ(s.probes, 11u);
  EXPECT_EQ(s.failures, 6u);
  EXPECT_EQ(s.transitions, 3u);

  ASSERT_TRUE(recorder_.WaitChanges(3));
  std::vector<HealthChange> c = recorder_.changes();
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[1].from, kUp);
  EXPECT_EQ(c[1].to, kDown);
  EXPECT_EQ(c[1].reason, "connect: reset");
  EXPECT_EQ(c[2].from, kDown);
  EXPECT_EQ(c[2].to, kUp);
  EXPECT_EQ(c[2].reason, "passed 2 probes");
}

TEST_F(MonitorTest, DefaultsAreRiseTwoFallThree) {
  Make();
  lb::v1::HealthCheck check = TcpCheck();
  check.clear_rise();
  check.clear_fall();
  CheckTarget t = Target("web", "192.0.2.1:80", check);
  ASSERT_THAT(monitor_->SetTargets({t}), IsOk());
  ASSERT_TRUE(prober_.Complete(t.connect, Pass()));
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(prober_.Complete(t.connect, Fail("x")));
  }
  EXPECT_EQ(StatusOf(t).state, kUp);
  ASSERT_TRUE(prober_.Complete(t.connect, Fail("x")));
  EXPECT_EQ(StatusOf(t).state, kDown);
  ASSERT_TRUE(prober_.Complete(t.connect, Pass()));
  EXPECT_EQ(StatusOf(t).state, kDown);
  ASSERT_TRUE(prober_.Complete(t.connect, Pass()));
  EXPECT_EQ(StatusOf(t).state, kUp);
}

TEST_F(MonitorTest, ProbeRequestCarriesTargetCheckAndTimeout) {
  Make();
  CheckTarget t = Target("web", "[2001:db8::2]:80", TcpCheck());
  t.connect = Ep("[2001:db8::9]:8080");
  ASSERT_THAT(monitor_->SetTargets({t}), IsOk());
  ASSERT_TRUE(prober_.Complete(t.connect, Pass()));
  std::vector<ProbeRequest> r = prober_.Requests();
  ASSERT_FALSE(r.empty());
  EXPECT_EQ(r[0].target, t.connect);
  EXPECT_EQ(r[0].backend, t.key.backend);
  EXPECT_EQ(r[0].service, "web");
  EXPECT_EQ(r[0].timeout, absl::Milliseconds(10));
  EXPECT_TRUE(r[0].check.has_tcp());
}

// Each target's probes start at least about `interval` apart: the monitor
// never probes early (lower bounds only; nothing here measures speed).
TEST_F(MonitorTest, ProbesOfATargetStartAnIntervalApart) {
  Make();
  CheckTarget fast =
      Target("web", "192.0.2.1:80", TcpCheck(absl::Milliseconds(20)));
  CheckTarget slow =
      Target("web", "192.0.2.2:80", TcpCheck(absl::Milliseconds(200)));
  prober_.SetAuto(true);
  ASSERT_THAT(monitor_->SetTargets({fast, slow}), IsOk());
  ASSERT_TRUE(Eventually([&] { return prober_.Started(slow.connect) >= 4; }));
  for (const auto& [target, interval] :
       {std::pair{fast, absl::Milliseconds(20)},
        std::pair{slow, absl::Milliseconds(200)}}) {
    std::vector<absl::Time> starts = prober_.StartTimes(target.connect);
    ASSERT_GE(starts.size(), 4u);
    for (size_t i = 1; i < starts.size(); ++i) {
      // Measured on the prober's side of Start: allow for the monitor
      // thread being descheduled between its clock read and Start.
      EXPECT_GE(starts[i] - starts[i - 1], interval * 0.5)
          << target.key.backend << " probe " << i;
    }
  }
  // The fast target got many more turns in the same time.
  EXPECT_GT(prober_.Started(fast.connect), prober_.Started(slow.connect));
}

// The first probes of targets listed together are spread over the interval
// (a random fraction of it each), not fired together.
TEST_F(MonitorTest, FirstProbesAreSpreadOverTheInterval) {
  Make();
  prober_.SetAuto(true);
  std::vector<CheckTarget> targets;
  for (int i = 1; i <= 20; ++i) {
    targets.push_back(Target("web", absl::StrCat("192.0.2.", i, ":80"),
                             TcpCheck(absl::Seconds(2))));
  }
  ASSERT_THAT(monitor_->SetTargets(targets), IsOk());
  ASSERT_TRUE(Eventually([&] {
    return std::all_of(targets.begin(), targets.end(), [&](const auto& t) {
      return prober_.Started(t.connect) >= 1;
    });
  }));
  std::vector<absl::Time> first;
  for (const CheckTarget& t : targets) {
    first.push_back(prober_.StartTimes(t.connect).front());
  }
  auto [earliest, latest] = std::minmax_element(first.begin(), first.end());
  // 20 uniform draws over 2 s span less than 0.5 s with probability ~1e-10.
  EXPECT_GT(*latest - *earliest, absl::Milliseconds(500));
}

TEST_F(MonitorTest, InFlightIsBoundedAndLateProbesAreCounted) {
  Make(/*max_in_flight=*/3);
  std::vector<CheckTarget> targets;
  for (int i = 1; i <= 10; ++i) {
    targets.push_back(Target("web", absl::StrCat("192.0.2.", i, ":80")));
  }
  ASSERT_THAT(monitor_->SetTargets(targets), IsOk());
  // 3 held probes fill the slots; the other 7 become due within one
  // interval and wait, each counted once.
  ASSERT_TRUE(Eventually([&] { return prober_.HeldTotal() == 3; }));
  ASSERT_TRUE(Eventually([&] {
    return MetricsText().find("anylb_health_probes_delayed_total 7\n") !=
           std::string::npos;
  })) << MetricsText();
  EXPECT_EQ(prober_.HeldTotal(), 3u);
  EXPECT_THAT(MetricsText(), HasSubstr("anylb_health_probes_in_flight 3\n"));
  // Answer probes as they come until every target had 3 turns.
  ASSERT_TRUE(Eventually([&] {
    for (const CheckTarget& t : targets) {
      if (prober_.Held(t.connect) > 0) {
        EXPECT_TRUE(prober_.Complete(t.connect, Pass()));
      }
    }
    return std::all_of(
        targets.begin(), targets.end(),
        [&](const CheckTarget& t) { return prober_.Started(t.connect) >= 3; });
  }));
  EXPECT_LE(prober_.peak(), 3u);
  EXPECT_EQ(prober_.peak(), 3u);
  for (const CheckTarget& t : targets) EXPECT_EQ(StatusOf(t).state, kUp);
}

TEST_F(MonitorTest, SetTargetsKeepsUnchangedAndResetsChanged) {
  Make();
  CheckTarget same = Target("web", "192.0.2.1:80");
  CheckTarget check_changes = Target("web", "192.0.2.2:80");
  CheckTarget connect_changes = Target("web", "192.0.2.3:80");
  CheckTarget dropped = Target("web", "192.0.2.4:80");
  ASSERT_THAT(
      monitor_->SetTargets({same, check_changes, connect_changes, dropped}),
      IsOk());
  for (const CheckTarget& t : {same, check_changes, connect_changes, dropped}) {
    ASSERT_TRUE(prober_.Complete(t.connect, Fail("connect: refused")));
    EXPECT_EQ(StatusOf(t).state, kDown);
  }

  CheckTarget check_changed = check_changes;
  check_changed.check.set_fall(5);
  CheckTarget connect_changed = connect_changes;
  connect_changed.connect = Ep("192.0.2.3:8080");
  CheckTarget added = Target("web", "192.0.2.5:80");
  ASSERT_THAT(
      monitor_->SetTargets({added, connect_changed, check_changed, same}),
      IsOk());
  BackendHealthStatus s = StatusOf(same);
  EXPECT_EQ(s.state, kDown);
  EXPECT_EQ(s.probes, 1u);
  EXPECT_EQ(s.last_error, "connect: refused");
  for (const CheckTarget& t : {check_changed, connect_changed, added}) {
    s = StatusOf(t);
    EXPECT_EQ(s.state, kUnchecked) << t.key.backend;
    EXPECT_EQ(s.probes, 0u) << t.key.backend;
    EXPECT_EQ(s.transitions, 0u) << t.key.backend;
  }
  EXPECT_FALSE(monitor_->Status(dropped.key).has_value());
  std::vector<BackendHealthStatus> all = monitor_->Statuses();
  ASSERT_EQ(all.size(), 4u);
  EXPECT_TRUE(std::is_sorted(
      all.begin(), all.end(),
      [](const auto& a, const auto& b) { return a.key < b.key; }));

  // The kept target goes on being probed; the changed one with its new
  // connect endpoint.
  ASSERT_TRUE(prober_.Complete(same.connect, Pass()));
  ASSERT_TRUE(prober_.Complete(same.connect, Pass()));
  EXPECT_EQ(StatusOf(same).state, kUp);
  ASSERT_TRUE(prober_.Complete(connect_changed.connect, Pass()));
  EXPECT_EQ(StatusOf(connect_changed).state, kUp);
}

TEST_F(MonitorTest, ForgottenTargetsLateResultIsIgnored) {
  Make();
  CheckTarget t = Target("web", "192.0.2.1:80");
  ASSERT_THAT(monitor_->SetTargets({t}), IsOk());
  ASSERT_TRUE(Eventually([&] { return prober_.Held(t.connect) == 1; }));
  // Forget it and list it again while its probe runs: the old probe's
  // result belongs to a target that no longer exists.
  ASSERT_THAT(monitor_->SetTargets({}), IsOk());
  EXPECT_TRUE(monitor_->Statuses().empty());
  ASSERT_THAT(monitor_->SetTargets({t}), IsOk());
  ASSERT_TRUE(prober_.Complete(t.connect, Fail("late")));
  BackendHealthStatus s = StatusOf(t);
  EXPECT_EQ(s.state, kUnchecked);
  EXPECT_EQ(s.probes, 0u);
  // The new target's own first probe decides.
  ASSERT_TRUE(prober_.Complete(t.connect, Pass()));
  EXPECT_EQ(StatusOf(t).state, kUp);
  ASSERT_TRUE(recorder_.WaitChanges(1));
  std::vector<HealthChange> c = recorder_.changes();
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].to, kUp);
}

TEST_F(MonitorTest, NotifyCommandsGetTheEnvironment) {
  Make();
  lb::v1::HealthCheck check = TcpCheck(absl::Milliseconds(20), 1, 1);
  check.add_notify_up("/usr/local/bin/up");
  check.add_notify_up("--now");
  check.add_notify_down("/usr/local/bin/down");
  CheckTarget t = Target("web", "[2001:db8::2]:80", check);
  t.connect = Ep("[2001:db8::2]:8080");
  CheckTarget quiet = Target("db", "192.0.2.7:5432", check);
  ASSERT_THAT(monitor_->SetTargets({t, quiet}), IsOk());

  ASSERT_TRUE(prober_.Complete(quiet.connect, Pass()));  // No news.
  ASSERT_TRUE(prober_.Complete(t.connect, Fail("connect: refused")));
  ASSERT_TRUE(prober_.Complete(t.connect, Pass()));
  ASSERT_TRUE(recorder_.WaitChanges(3));
  ASSERT_TRUE(Eventually([&] { return recorder_.commands().size() >= 2; }));
  std::vector<CommandRequest> cmds = recorder_.commands();
  ASSERT_EQ(cmds.size(), 2u);
  EXPECT_THAT(cmds[0].argv, ElementsAre("/usr/local/bin/down"));
  EXPECT_THAT(cmds[0].env,
              UnorderedElementsAre(Pair("LB_SERVICE", "web"),
                                   Pair("LB_BACKEND_ADDRESS", "2001:db8::2"),
                                   Pair("LB_BACKEND_PORT", "80"),
                                   Pair("LB_CHECK_ADDRESS", "2001:db8::2"),
                                   Pair("LB_CHECK_PORT", "8080"),
                                   Pair("LB_STATE", "down"),
                                   Pair("LB_REASON", "connect: refused")));
  EXPECT_THAT(cmds[1].argv, ElementsAre("/usr/local/bin/up", "--now"));
  EXPECT_THAT(cmds[1].env,
              AllOf(::testing::Contains(Pair("LB_STATE", "up")),
                    ::testing::Contains(Pair("LB_REASON", "passed 1 probe"))));
}

TEST_F(MonitorTest, DynamicWeightChangeIsAChange) {
  Make();
  lb::v1::HealthCheck check = TcpCheck();
  check.mutable_exec()->add_argv("/usr/local/bin/weight");
  check.mutable_exec()->set_dynamic_weight(true);
  CheckTarget t = Target("web", "192.0.2.1:80", check);
  t.connect = Endpoint(t.connect.address(), 0);  // Port 0: fine for exec.
  ASSERT_THAT(monitor_->SetTargets({t}), IsOk());

  ASSERT_TRUE(prober_.Complete(t.connect, Pass(5)));
  ASSERT_TRUE(recorder_.WaitChanges(1));
  ASSERT_TRUE(prober_.Complete(t.connect, Pass(5)));  // Same: no change.
  ASSERT_TRUE(prober_.Complete(t.connect, Pass(7)));
  ASSERT_TRUE(recorder_.WaitChanges(2));
  ASSERT_TRUE(prober_.Complete(t.connect, Pass()));  // Exit 0: configured.
  ASSERT_TRUE(recorder_.WaitChanges(3));
  std::vector<HealthChange> c = recorder_.changes();
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0].to, kUp);
  EXPECT_EQ(c[0].dynamic_weight, 5u);
  EXPECT_EQ(c[1].from, kUp);
  EXPECT_EQ(c[1].to, kUp);
  EXPECT_EQ(c[1].dynamic_weight, 7u);
  EXPECT_EQ(c[1].reason, "dynamic weight 5 -> 7");
  EXPECT_EQ(c[2].dynamic_weight, std::nullopt);
  EXPECT_EQ(c[2].reason, "dynamic weight 7 -> none");
  EXPECT_EQ(StatusOf(t).transitions, 1u);
  EXPECT_TRUE(recorder_.commands().empty());

  ASSERT_TRUE(prober_.Complete(t.connect, Pass(9)));
  ASSERT_TRUE(recorder_.WaitChanges(4));
  EXPECT_EQ(StatusOf(t).dynamic_weight, 9u);
  EXPECT_THAT(MetricsText(),
              HasSubstr("anylb_health_dynamic_weight{service=\"web\","
                        "backend=\"192.0.2.1:80\"} 9\n"));
}

TEST_F(MonitorTest, InvalidTargetsAreRejectedAndNothingChanges) {
  Make();
  CheckTarget good = Target("web", "192.0.2.1:80");
  ASSERT_THAT(monitor_->SetTargets({good}), IsOk());
  ASSERT_TRUE(prober_.Complete(good.connect, Pass()));

  CheckTarget other = Target("web", "192.0.2.2:80");
  struct Case {
    std::string name;
    std::vector<CheckTarget> targets;
    std::string want;
  };
  CheckTarget no_kind = Target("api", "192.0.2.3:443");
  no_kind.check.clear_tcp();
  CheckTarget slow_timeout = Target("api", "192.0.2.3:443");
  slow_timeout.check.mutable_timeout()->set_nanos(0);
  slow_timeout.check.mutable_timeout()->set_seconds(1);
  CheckTarget default_timeout = Target("api", "192.0.2.3:443");
  default_timeout.check.clear_timeout();
  default_timeout.check.mutable_interval()->set_seconds(1);
  default_timeout.check.mutable_interval()->set_nanos(0);
  CheckTarget tiny =
      Target("api", "192.0.2.3:443", TcpCheck(absl::Milliseconds(8)));
  CheckTarget no_port = Target("api", "192.0.2.3:0");
  CheckTarget bad_duration = Target("api", "192.0.2.3:443");
  bad_duration.check.mutable_interval()->set_seconds(1);
  bad_duration.check.mutable_interval()->set_nanos(-5);
  std::vector<Case> cases = {
      {"duplicate", {other, other}, "\"web\" backend 192.0.2.2:80: key"},
      {"no kind", {other, no_kind}, "\"api\" backend 192.0.2.3:443: check"},
      {"timeout", {slow_timeout}, "timeout 1s must be below interval 20ms"},
      {"default timeout",
       {default_timeout},
       "timeout 2s (the default) must be below interval 1s: set timeout"},
      {"interval", {tiny}, "interval 8ms is below 10ms"},
      {"port", {no_port}, "connect 192.0.2.3:0: port 0"},
      {"duration", {bad_duration}, "interval: {seconds: 1, nanos: -5}"},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(monitor_->SetTargets(c.targets),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.want)))
        << c.name;
  }
  std::vector<BackendHealthStatus> all = monitor_->Statuses();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].key, good.key);
  EXPECT_EQ(all[0].state, kUp);
}

TEST_F(MonitorTest, MetricsFamiliesAndValues) {
  Make();
  CheckTarget up = Target("web", "192.0.2.1:80");
  CheckTarget down = Target("web", "[2001:db8::2]:80");
  CheckTarget unchecked =
      Target("web", "192.0.2.3:80", TcpCheck(absl::Seconds(600)));
  ASSERT_THAT(monitor_->SetTargets({up, down}), IsOk());
  ASSERT_TRUE(prober_.Complete(up.connect, Pass()));
  ASSERT_TRUE(prober_.Complete(up.connect, Fail("x")));
  ASSERT_TRUE(prober_.Complete(down.connect, Fail("connect: refused")));
  ASSERT_THAT(monitor_->SetTargets({up, down, unchecked}), IsOk());

  std::vector<metrics::MetricFamily> families;
  ASSERT_THAT(monitor_->CollectMetrics(&families), IsOk());
  std::vector<std::string> names;
  for (const auto& f : families) names.push_back(f.name());
  EXPECT_THAT(names,
              ElementsAre("anylb_health_state", "anylb_health_probes_total",
                          "anylb_health_transitions_total",
                          "anylb_health_dynamic_weight",
                          "anylb_health_probes_in_flight",
                          "anylb_health_probes_delayed_total"));
  const std::string text = MetricsText();
  for (const std::string line : {
           "anylb_health_state{service=\"web\",backend=\"192.0.2.1:80\"} 1\n",
           "anylb_health_state{service=\"web\",backend=\"192.0.2.3:80\"} -1\n",
           "anylb_health_state{service=\"web\",backend=\"[2001:db8::2]:80\"} "
           "0\n",
           "anylb_health_probes_total{service=\"web\",backend=\"192.0.2.1:"
           "80\",result=\"pass\"} 1\n",
           "anylb_health_probes_total{service=\"web\",backend=\"192.0.2.1:"
           "80\",result=\"fail\"} 1\n",
           "anylb_health_probes_total{service=\"web\",backend=\"[2001:db8::2]:"
           "80\",result=\"fail\"} 1\n",
           "anylb_health_transitions_total{service=\"web\",backend=\"192.0.2."
           "1:80\",to=\"up\"} 1\n",
           "anylb_health_transitions_total{service=\"web\",backend=\"192.0.2."
           "1:80\",to=\"down\"} 0\n",
           "anylb_health_transitions_total{service=\"web\",backend=\"[2001:"
           "db8::2]:80\",to=\"down\"} 1\n",
           "anylb_health_probes_delayed_total 0\n",
       }) {
    EXPECT_THAT(text, HasSubstr(line));
  }
  // Tcp checks have no dynamic weight sample.
  EXPECT_THAT(text, Not(HasSubstr("anylb_health_dynamic_weight{")));
}

// A prober that answers inside Start, on the monitor's thread.
class InlineProber : public Prober {
 public:
  void Start(const ProbeRequest&, ProbeDone done) override {
    std::move(done)(Fail("connect: refused"));
  }
};

TEST(HealthMonitorInline, DoneInsideStartDoesNotDeadlock) {
  InlineProber prober;
  MonitorOptions o;
  o.prober = &prober;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<HealthMonitor> monitor,
                       HealthMonitor::Create(std::move(o)));
  CheckTarget t = Target("web", "192.0.2.1:80");
  ASSERT_THAT(monitor->SetTargets({t}), IsOk());
  ASSERT_TRUE(Eventually([&] { return monitor->Status(t.key)->probes >= 3; }));
  EXPECT_EQ(monitor->Status(t.key)->state, kDown);
}

TEST_F(MonitorTest, DestructorWaitsForProbesInFlight) {
  Make();
  std::vector<CheckTarget> targets;
  for (int i = 1; i <= 5; ++i) {
    targets.push_back(Target("web", absl::StrCat("192.0.2.", i, ":80")));
  }
  ASSERT_THAT(monitor_->SetTargets(targets), IsOk());
  ASSERT_TRUE(Eventually([&] { return prober_.HeldTotal() == 5; }));
  // The probes end (late, on another thread) while the destructor waits.
  std::thread finisher([&] {
    absl::SleepFor(absl::Milliseconds(50));
    for (const CheckTarget& t : targets) {
      EXPECT_TRUE(prober_.Complete(t.connect, Fail("checker stopped")));
    }
  });
  monitor_.reset();
  EXPECT_EQ(prober_.HeldTotal(), 0u);
  finisher.join();
}

// TcpListener is a listening socket on 127.0.0.1 that the test closes and
// opens again on the same port. Probes are never accepted: each waits in a
// long listen queue, which is enough for a TCP check.
class TcpListener {
 public:
  ~TcpListener() { Close(); }
  // Open listens on `port` (0: the kernel picks one).
  [[nodiscard]] bool Open(uint16_t port = 0) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return false;
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr = {};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        listen(fd_, 4096) != 0) {
      return false;
    }
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    return true;
  }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

TEST(HealthMonitorSocketProber, TcpServerGoesDownAndComesBack) {
  TcpListener listener;
  ASSERT_TRUE(listener.Open()) << "listen on 127.0.0.1: " << strerror(errno);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<SocketProber> prober,
                       SocketProber::Create());
  Recorder recorder;
  MonitorOptions o;
  o.prober = prober.get();
  o.on_change = [&](const HealthChange& c) { recorder.OnChange(c); };
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<HealthMonitor> monitor,
                       HealthMonitor::Create(std::move(o)));
  const Endpoint server(*IpAddress::Parse("127.0.0.1"), listener.port());
  CheckTarget t;
  t.key = {"web", server};
  t.connect = server;
  t.check = TcpCheck(absl::Milliseconds(50), /*rise=*/2, /*fall=*/2);
  ASSERT_THAT(monitor->SetTargets({t}), IsOk());
  auto state = [&] { return monitor->Status(t.key)->state; };

  ASSERT_TRUE(Eventually([&] { return state() == kUp; }));
  listener.Close();
  ASSERT_TRUE(Eventually([&] { return state() == kDown; }));
  BackendHealthStatus s = *monitor->Status(t.key);
  EXPECT_GE(s.failures, 2u);
  EXPECT_THAT(s.last_error, HasSubstr("refused"));

  ASSERT_TRUE(listener.Open(server.port()))
      << "listen again on " << server << ": " << strerror(errno);
  ASSERT_TRUE(Eventually([&] { return state() == kUp; }));
  EXPECT_EQ(monitor->Status(t.key)->last_error, "");

  ASSERT_TRUE(recorder.WaitChanges(3));
  std::vector<HealthChange> c = recorder.changes();
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0].to, kUp);
  EXPECT_EQ(c[1].from, kUp);
  EXPECT_EQ(c[1].to, kDown);
  EXPECT_THAT(c[1].reason, HasSubstr("refused"));
  EXPECT_EQ(c[2].from, kDown);
  EXPECT_EQ(c[2].to, kUp);
  EXPECT_EQ(c[2].reason, "passed 2 probes");
  monitor.reset();  // Before the prober it uses.
}

}  // namespace
}  // namespace anylb::health
