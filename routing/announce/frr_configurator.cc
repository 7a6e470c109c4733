#include "routing/announce/frr_configurator.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace anylb::routing::announce {

FrrConfigurator::FrrConfigurator(Vtysh* vtysh, FrrConfiguratorOptions options)
    : vtysh_(vtysh), options_(std::move(options)) {}

std::string FrrConfigurator::last_error() const {
  absl::MutexLock lock(&mu_);
  return last_error_;
}

absl::Status FrrConfigurator::SyncDaemon(const FrrIntent& intent,
                                         RoutingProtocol protocol) {
  const std::string daemon = DaemonOf(protocol);
  ASSIGN_OR_RETURN(std::string text,
                   vtysh_->Run(daemon, {"show running-config"}));
  OwnedConfig running = ParseOwnedConfig(text);
  ASSIGN_OR_RETURN(OwnedConfig desired,
                   DesiredConfig(intent, protocol, running));
  std::vector<std::string> commands =
      DiffCommands(running, desired, MapsOf(protocol));
  if (commands.empty()) return absl::OkStatus();
  std::vector<std::string> all = {"configure terminal"};
  all.insert(all.end(), commands.begin(), commands.end());
  RETURN_IF_ERROR(vtysh_->Run(daemon, all).status());
  ++applies_;
  LB_LOG(kInfo) << "FRR " << daemon << ": applied "
                << absl::StrJoin(commands, "; ");
  return absl::OkStatus();
}

absl::Status FrrConfigurator::Sync(const FrrIntent& intent, absl::Time now) {
  const bool changed = !ever_synced_ || !(intent == synced_intent_);
  if (in_sync_ && !changed && now < next_check_) return absl::OkStatus();
  if (!in_sync_ && !changed && now < next_retry_) {
    absl::MutexLock lock(&mu_);
    return absl::UnavailableError(last_error_);
  }
  if (changed) in_sync_ = false;
  for (RoutingProtocol protocol : options_.protocols) {
    absl::Status status = SyncDaemon(intent, protocol);
    if (status.ok()) continue;
    ++apply_errors_;
    in_sync_ = false;
    ever_synced_ = true;
    synced_intent_ = intent;
    next_retry_ = now + options_.retry_interval;
    std::string message = absl::StrCat(
        "configuring FRR's ", DaemonOf(protocol), " failed (retry in ",
        absl::FormatDuration(options_.retry_interval), "): ", status.message());
    if (message != last_logged_error_) {
      LB_LOG(kWarning) << message;
      last_logged_error_ = message;
    } else {
      LB_LOG(kDebug) << message;
    }
    absl::MutexLock lock(&mu_);
    last_error_ = message;
    return {status.code(), message};
  }
  if (!last_logged_error_.empty()) {
    LB_LOG(kInfo) << "FRR configured again after errors";
    last_logged_error_.clear();
  }
  ever_synced_ = true;
  synced_intent_ = intent;
  in_sync_ = true;
  next_check_ = now + options_.check_interval;
  return absl::OkStatus();
}

}  // namespace anylb::routing::announce
