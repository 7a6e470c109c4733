#include "controller/lbctl/runner.h"

#include <chrono>
#include <iostream>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/config/config_yaml.h"
#include "common/status_macros.h"
#include "controller/lbctl/format.h"
#include "controller/lbctl/names.h"
#include "controller/lbctl/restore.h"
#include "google/protobuf/field_mask.pb.h"

namespace anylb::lbctl {
namespace {

constexpr char kUsagePayload[] = "anylb.lbctl/usage";

// UsageFailure marks a status as a bad command line or input (exit 2).
absl::Status UsageFailure(absl::Status status) {
  status.SetPayload(kUsagePayload, absl::Cord("1"));
  return status;
}

std::string CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::CANCELLED:
      return "cancelled";
    case grpc::StatusCode::UNKNOWN:
      return "unknown error";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "invalid argument";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "deadline exceeded";
    case grpc::StatusCode::NOT_FOUND:
      return "not found";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "already exists";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "permission denied";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "resource exhausted";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "failed precondition";
    case grpc::StatusCode::ABORTED:
      return "aborted";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "out of range";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "not implemented by this controller";
    case grpc::StatusCode::INTERNAL:
      return "internal error in the controller";
    case grpc::StatusCode::UNAVAILABLE:
      return "unavailable";
    case grpc::StatusCode::DATA_LOSS:
      return "data loss";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "unauthenticated";
    default:
      return "error";
  }
}

lb::v1::ServiceSelector SelectorOf(const lb::v1::VirtualAddress& address) {
  lb::v1::ServiceSelector selector;
  *selector.mutable_virtual_address() = address;
  return selector;
}

google::protobuf::FieldMask MaskOf(const std::vector<std::string>& fields) {
  google::protobuf::FieldMask mask;
  for (const std::string& field : fields) mask.add_paths(field);
  return mask;
}

std::string ServerLabel(const Command& command,
                        const lb::v1::Service& service) {
  return HostPort(command.backend.address(), command.backend.port() != 0
                                                 ? command.backend.port()
                                                 : service.port());
}

}  // namespace

Runner::Runner(lb::v1::Controller::StubInterface* stub, RunnerOptions options,
               std::ostream& out, std::ostream& err, std::istream& in)
    : stub_(stub),
      options_(std::move(options)),
      out_(out),
      err_(err),
      in_(in) {}

int Runner::Run(const Command& command) {
  absl::Status status = Dispatch(command);
  if (status.ok()) return kExitOk;
  err_ << "lbctl: " << status.message() << "\n";
  err_.flush();
  return status.GetPayload(kUsagePayload).has_value() ? kExitUsage
                                                      : kExitFailed;
}

std::unique_ptr<grpc::ClientContext> Runner::NewContext() const {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(absl::Now() + options_.timeout));
  if (!options_.plaintext_token.empty()) {
    context->AddMetadata("authorization",
                         absl::StrCat("Bearer ", options_.plaintext_token));
  }
  return context;
}

absl::Status Runner::RpcError(const Command& command,
                              const grpc::Status& status,
                              const std::string& not_found,
                              const std::string& already_exists) const {
  std::string prefix = absl::StrCat(command.spelling, ": ");
  // The controller lists every problem on its own line; lbctl's error is
  // one line.
  std::string detail = absl::StrJoin(
      absl::StrSplit(status.error_message(), '\n', absl::SkipWhitespace()),
      "; ");
  std::string text;
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      text = absl::StrCat(
          "cannot reach the controller at ", options_.controller, ": ", detail,
          options_.tls ? " (is it running there? is --ca the CA that signed "
                         "its certificate? --controller / LBCTL_CONTROLLER)"
                       : " (is it running there? --controller / "
                         "LBCTL_CONTROLLER)");
      break;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      text = absl::StrCat(
          "the controller at ", options_.controller, " did not answer within ",
          absl::FormatDuration(options_.timeout), " (raise --timeout?)");
      break;
    case grpc::StatusCode::UNAUTHENTICATED:
      text = absl::StrCat(
          "the controller did not accept our credentials: ", detail,
          " (give a valid token with --token_file or LBCTL_TOKEN_FILE)");
      break;
    case grpc::StatusCode::PERMISSION_DENIED:
      text = absl::StrCat("permission denied: ", detail,
                          " (this needs a token with the operator role)");
      break;
    case grpc::StatusCode::NOT_FOUND:
      text =
          not_found.empty() ? absl::StrCat("not found: ", detail) : not_found;
      break;
    case grpc::StatusCode::ALREADY_EXISTS:
      text = already_exists.empty() ? absl::StrCat("already exists: ", detail)
                                    : already_exists;
      break;
    case grpc::StatusCode::INVALID_ARGUMENT:
      text = absl::StrCat("the controller refused it: ", detail);
      break;
    case grpc::StatusCode::FAILED_PRECONDITION:
      text = absl::StrCat("the controller refused it: ", detail);
      break;
    default:
      text = absl::StrCat("the controller answered ",
                          CodeName(status.error_code()), ": ", detail);
      break;
  }
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      prefix + text);
}

absl::Status Runner::Dispatch(const Command& command) {
  switch (command.verb) {
    case Verb::kAddService:
      return AddService(command);
    case Verb::kEditService:
      return EditService(command);
    case Verb::kDeleteService:
      return DeleteService(command);
    case Verb::kAddServer:
      return AddServer(command);
    case Verb::kEditServer:
      return EditServer(command);
    case Verb::kDeleteServer:
      return DeleteServer(command);
    case Verb::kList:
      return List(command);
    case Verb::kZero:
      return Zero(command);
    case Verb::kClear:
      return Clear(command);
    case Verb::kSave:
      return Save(command);
    case Verb::kRestore:
      return Restore(command);
    case Verb::kApply:
      return Apply(command);
    case Verb::kNodes:
      return Nodes(command);
    case Verb::kDrain:
      return Drain(command, true);
    case Verb::kUndrain:
      return Drain(command, false);
    case Verb::kNodeWeight:
    case Verb::kNodeLocal:
      return UpdateNode(command);
    case Verb::kStatus:
      return ShowStatus(command);
    case Verb::kHelp:
    case Verb::kVersion:
      break;
  }
  return absl::OkStatus();
}

std::string MissingService(const Command& command) {
  return absl::StrCat("service ", ServiceLabel(*command.virtual_address),
                      " does not exist (add it with -A first)");
}

absl::Status Runner::AddService(const Command& command) {
  lb::v1::CreateServiceRequest request;
  *request.mutable_service() = command.service;
  lb::v1::ServiceResponse response;
  grpc::Status status =
      stub_->CreateService(NewContext().get(), request, &response);
  if (!status.ok()) {
    return RpcError(
        command, status, "",
        absl::StrCat("service ", ServiceLabel(*command.virtual_address),
                     " already exists (change it with -E)"));
  }
  if (options_.output == OutputFormat::kJson) out_ << ToJson(response);
  return absl::OkStatus();
}

absl::Status Runner::EditService(const Command& command) {
  lb::v1::UpdateServiceRequest request;
  *request.mutable_selector() = SelectorOf(*command.virtual_address);
  *request.mutable_service() = command.service;
  *request.mutable_update_mask() = MaskOf(command.service_fields);
  lb::v1::ServiceResponse response;
  grpc::Status status =
      stub_->UpdateService(NewContext().get(), request, &response);
  if (!status.ok()) {
    return RpcError(command, status, MissingService(command), "");
  }
  if (options_.output == OutputFormat::kJson) out_ << ToJson(response);
  return absl::OkStatus();
}

absl::Status Runner::DeleteService(const Command& command) {
  lb::v1::DeleteServiceRequest request;
  *request.mutable_selector() = SelectorOf(*command.virtual_address);
  lb::v1::DeleteServiceResponse response;
  grpc::Status status =
      stub_->DeleteService(NewContext().get(), request, &response);
  if (!status.ok()) {
    return RpcError(command, status, MissingService(command), "");
  }
  if (options_.output == OutputFormat::kJson) out_ << ToJson(response);
  return absl::OkStatus();
}

absl::StatusOr<lb::v1::Service> Runner::GetService(const Command& command) {
  lb::v1::GetServiceRequest request;
  *request.mutable_selector() = SelectorOf(*command.virtual_address);
  lb::v1::ServiceResponse response;
  grpc::Status status =
      stub_->GetService(NewContext().get(), request, &response);
  if (!status.ok()) {
    return RpcError(command, status, MissingService(command), "");
  }
  return response.service();
}

absl::Status Runner::SetServiceForwarding(
    const Command& command, const lb::v1::Forwarding& forwarding) {
  lb::v1::UpdateServiceRequest request;
  *request.mutable_selector() = SelectorOf(*command.virtual_address);
  *request.mutable_service()->mutable_forwarding() = forwarding;
  request.mutable_update_mask()->add_paths("forwarding");
  lb::v1::ServiceResponse response;
  grpc::Status status =
      stub_->UpdateService(NewContext().get(), request, &response);
  if (!status.ok()) {
    return RpcError(command, status, MissingService(command), "");
  }
  return absl::OkStatus();
}

absl::Status Runner::AddServer(const Command& command) {
  ASSIGN_OR_RETURN(lb::v1::Service service, GetService(command));
  std::string already = absl::StrCat(
      "real server ", ServerLabel(command, service), " is already in ",
      ServiceLabel(*command.virtual_address), " (change it with -e)");
  if (FindBackend(service, command.backend.address(), command.backend.port()) !=
      nullptr) {
    return absl::AlreadyExistsError(
        absl::StrCat(command.spelling, ": ", already));
  }
  absl::StatusOr<ForwardingPlan> plan =
      PlanForwarding(command, service, nullptr);
  if (!plan.ok()) {
    return absl::Status(
        plan.status().code(),
        absl::StrCat(command.spelling, ": ", plan.status().message()));
  }
  if (plan->switch_service) {
    // The service's first real server chooses its method, as with
    // ipvsadm; the real server then follows the service.
    RETURN_IF_ERROR(SetServiceForwarding(command, plan->service_forwarding));
  }
  lb::v1::AddBackendRequest request;
  *request.mutable_selector() = SelectorOf(*command.virtual_address);
  *request.mutable_backend() = command.backend;
  request.mutable_backend()->clear_forwarding();
  lb::v1::ServiceResponse response;
  grpc::Status status =
      stub_->AddBackend(NewContext().get(), request, &response);
  if (!status.ok()) {
    if (plan->switch_service) {
      // Best effort: leave the service as it was.
      SetServiceForwarding(command, service.forwarding()).IgnoreError();
    }
    return RpcError(command, status, MissingService(command), already);
  }
  if (options_.output == OutputFormat::kJson) out_ << ToJson(response);
  return absl::OkStatus();
}

absl::Status Runner::EditServer(const Command& command) {
  ASSIGN_OR_RETURN(lb::v1::Service service, GetService(command));
  std::string missing =
      absl::StrCat("real server ", ServerLabel(command, service), " is not in ",
                   ServiceLabel(*command.virtual_address), " (add it with -a)");
  const lb::v1::Backend* found =
      FindBackend(service, command.backend.address(), command.backend.port());
  if (found == nullptr) {
    return absl::NotFoundError(absl::StrCat(command.spelling, ": ", missing));
  }
  absl::StatusOr<ForwardingPlan> plan = PlanForwarding(command, service, found);
  if (!plan.ok()) {
    return absl::Status(
        plan.status().code(),
        absl::StrCat(command.spelling, ": ", plan.status().message()));
  }
  lb::v1::UpdateBackendRequest request;
  *request.mutable_selector() = SelectorOf(*command.virtual_address);
  lb::v1::Backend* backend = request.mutable_backend();
  *backend = command.backend;
  backend->set_address(found->address());
  backend->set_port(found->port());
  backend->clear_forwarding();
  *request.mutable_update_mask() = MaskOf(command.backend_fields);
  if (plan->switch_service) {
    RETURN_IF_ERROR(SetServiceForwarding(command, plan->service_forwarding));
  }
  lb::v1::ServiceResponse response;
  grpc::Status status =
      stub_->UpdateBackend(NewContext().get(), request, &response);
  if (!status.ok()) {
    if (plan->switch_service) {
      SetServiceForwarding(command, service.forwarding()).IgnoreError();
    }
    return RpcError(command, status, missing, "");
  }
  if (options_.output == OutputFormat::kJson) out_ << ToJson(response);
  return absl::OkStatus();
}

absl::Status Runner::DeleteServer(const Command& command) {
  ASSIGN_OR_RETURN(lb::v1::Service service, GetService(command));
  std::string missing =
      absl::StrCat("real server ", ServerLabel(command, service), " is not in ",
                   ServiceLabel(*command.virtual_address));
  const lb::v1::Backend* found =
      FindBackend(service, command.backend.address(), command.backend.port());
  if (found == nullptr) {
    return absl::NotFoundError(absl::StrCat(command.spelling, ": ", missing));
  }
  lb::v1::RemoveBackendRequest request;
  *request.mutable_selector() = SelectorOf(*command.virtual_address);
  request.set_address(found->address());
  request.set_port(found->port());
  lb::v1::ServiceResponse response;
  grpc::Status status =
      stub_->RemoveBackend(NewContext().get(), request, &response);
  if (!status.ok()) return RpcError(command, status, missing, "");
  if (options_.output == OutputFormat::kJson) out_ << ToJson(response);
  return absl::OkStatus();
}

absl::StatusOr<lb::v1::GetStatsResponse> Runner::GetStats(
    const Command& command) {
  lb::v1::GetStatsRequest request;
  if (command.virtual_address.has_value()) {
    *request.add_selectors() = SelectorOf(*command.virtual_address);
  }
  lb::v1::GetStatsResponse response;
  grpc::Status status = stub_->GetStats(NewContext().get(), request, &response);
  if (!status.ok()) {
    return RpcError(command, status,
                    command.virtual_address.has_value()
                        ? MissingService(command)
                        : std::string(),
                    "");
  }
  return response;
}

absl::StatusOr<lb::v1::GetHealthResponse> Runner::GetHealth(
    const Command& command) {
  lb::v1::GetHealthRequest request;
  if (command.virtual_address.has_value()) {
    *request.add_selectors() = SelectorOf(*command.virtual_address);
  }
  lb::v1::GetHealthResponse response;
  grpc::Status status =
      stub_->GetHealth(NewContext().get(), request, &response);
  // A controller older than GetHealth: the list without a Health column.
  if (status.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
    return lb::v1::GetHealthResponse();
  }
  if (!status.ok()) {
    return RpcError(command, status,
                    command.virtual_address.has_value()
                        ? MissingService(command)
                        : std::string(),
                    "");
  }
  return response;
}

absl::Status Runner::List(const Command& command) {
  std::vector<lb::v1::Service> services;
  uint64_t revision = 0;
  if (command.virtual_address.has_value()) {
    ASSIGN_OR_RETURN(lb::v1::Service service, GetService(command));
    services.push_back(std::move(service));
  } else {
    lb::v1::ListServicesResponse response;
    grpc::Status status = stub_->ListServices(
        NewContext().get(), lb::v1::ListServicesRequest(), &response);
    if (!status.ok()) return RpcError(command, status, "", "");
    services.assign(response.services().begin(), response.services().end());
    revision = response.revision();
  }
  ASSIGN_OR_RETURN(lb::v1::GetStatsResponse stats, GetStats(command));
  if (command.list.columns == ListColumns::kRate) {
    absl::Time start = absl::Now();
    absl::SleepFor(command.list.rate_interval);
    ASSIGN_OR_RETURN(lb::v1::GetStatsResponse later, GetStats(command));
    stats = RateOf(stats, later, absl::Now() - start);
  }
  ASSIGN_OR_RETURN(lb::v1::GetHealthResponse health, GetHealth(command));
  if (options_.output == OutputFormat::kJson) {
    std::string json;
    if (command.list.columns == ListColumns::kStats ||
        command.list.columns == ListColumns::kRate) {
      json = ToJson(stats);
    } else {
      lb::v1::ListServicesResponse response;
      for (auto& service : services) *response.add_services() = service;
      response.set_revision(revision);
      json = ToJson(response);
    }
    out_ << (health.backends().empty() ? json : WithHealth(json, health));
    return absl::OkStatus();
  }
  out_ << FormatList(std::move(services), stats, command.list, revision,
                     !command.virtual_address.has_value(), health, absl::Now());
  return absl::OkStatus();
}

absl::Status Runner::Zero(const Command& command) {
  lb::v1::ZeroCountersRequest request;
  if (command.virtual_address.has_value()) {
    *request.add_selectors() = SelectorOf(*command.virtual_address);
  }
  lb::v1::ZeroCountersResponse response;
  grpc::Status status =
      stub_->ZeroCounters(NewContext().get(), request, &response);
  if (!status.ok()) {
    return RpcError(command, status,
                    command.virtual_address.has_value()
                        ? MissingService(command)
                        : std::string(),
                    "");
  }
  return absl::OkStatus();
}

absl::Status Runner::Clear(const Command& command) {
  lb::v1::ApplyServicesRequest request;  // no services: delete them all
  lb::v1::ApplyServicesResponse response;
  grpc::Status status =
      stub_->ApplyServices(NewContext().get(), request, &response);
  if (!status.ok()) return RpcError(command, status, "", "");
  if (options_.output == OutputFormat::kJson) out_ << ToJson(response);
  return absl::OkStatus();
}

absl::Status Runner::Save(const Command& command) {
  lb::v1::ListServicesResponse response;
  grpc::Status status = stub_->ListServices(
      NewContext().get(), lb::v1::ListServicesRequest(), &response);
  if (!status.ok()) return RpcError(command, status, "", "");
  if (options_.output == OutputFormat::kJson) {
    out_ << ToJson(response);
    return absl::OkStatus();
  }
  out_ << FormatSave(std::vector<lb::v1::Service>(response.services().begin(),
                                                  response.services().end()));
  return absl::OkStatus();
}

absl::Status Runner::Restore(const Command& command) {
  std::string text(std::istreambuf_iterator<char>(in_), {});
  lb::v1::ListServicesResponse current;
  grpc::Status status = stub_->ListServices(
      NewContext().get(), lb::v1::ListServicesRequest(), &current);
  if (!status.ok()) return RpcError(command, status, "", "");
  absl::StatusOr<std::vector<lb::v1::Service>> restored =
      RestoreServices(text, "stdin",
                      std::vector<lb::v1::Service>(current.services().begin(),
                                                   current.services().end()));
  if (!restored.ok()) {
    absl::Status failure(
        restored.status().code(),
        absl::StrCat(command.spelling, ": ", restored.status().message(),
                     "; nothing was changed"));
    if (restored.status().code() == absl::StatusCode::kInvalidArgument) {
      return UsageFailure(failure);
    }
    return failure;
  }
  lb::v1::ApplyServicesRequest request;
  for (lb::v1::Service& service : *restored) {
    *request.add_services() = std::move(service);
  }
  request.set_expected_revision(current.revision());
  lb::v1::ApplyServicesResponse response;
  status = stub_->ApplyServices(NewContext().get(), request, &response);
  if (!status.ok()) {
    if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
      return absl::FailedPreconditionError(
          absl::StrCat(command.spelling,
                       ": the services changed while restoring (they "
                       "were read at revision ",
                       current.revision(), "): ", status.error_message(),
                       "; nothing was changed, run it again"));
    }
    return RpcError(command, status, "", "");
  }
  if (options_.output == OutputFormat::kJson) out_ << ToJson(response);
  return absl::OkStatus();
}

absl::Status Runner::Apply(const Command& command) {
  absl::StatusOr<lb::v1::ConfigSnapshot> config;
  if (command.file == "-") {
    std::string text(std::istreambuf_iterator<char>(in_), {});
    config = config::ParseConfigYaml(text, "stdin");
  } else {
    config = config::LoadConfigFile(command.file);
  }
  if (!config.ok()) {
    // The parser lists every problem on its own line (each with its
    // file:line:column); lbctl's error is one line.
    return UsageFailure(absl::InvalidArgumentError(absl::StrCat(
        "apply: ", absl::StrJoin(absl::StrSplit(config.status().message(), '\n',
                                                absl::SkipWhitespace()),
                                 "; "))));
  }
  lb::v1::ApplyServicesRequest request;
  *request.mutable_services() = config->services();
  request.set_dry_run(command.dry_run);
  lb::v1::ApplyServicesResponse response;
  grpc::Status status =
      stub_->ApplyServices(NewContext().get(), request, &response);
  if (!status.ok()) return RpcError(command, status, "", "");
  if (options_.output == OutputFormat::kJson) {
    out_ << ToJson(response);
  } else {
    out_ << FormatDiff(response, command.dry_run);
  }
  return absl::OkStatus();
}

absl::Status Runner::Nodes(const Command& command) {
  lb::v1::ListNodesResponse response;
  grpc::Status status = stub_->ListNodes(NewContext().get(),
                                         lb::v1::ListNodesRequest(), &response);
  if (!status.ok()) return RpcError(command, status, "", "");
  out_ << (options_.output == OutputFormat::kJson ? ToJson(response)
                                                  : FormatNodes(response));
  return absl::OkStatus();
}

absl::Status Runner::NodeRpcError(const Command& command,
                                  const grpc::Status& status) {
  return RpcError(command, status,
                  absl::StrCat("node \"", command.node_name,
                               "\" is not registered (lbctl nodes lists them)"),
                  "");
}

absl::Status Runner::Drain(const Command& command, bool drain) {
  lb::v1::NodeResponse response;
  grpc::Status status;
  if (drain) {
    lb::v1::DrainNodeRequest request;
    request.set_node_name(command.node_name);
    status = stub_->DrainNode(NewContext().get(), request, &response);
  } else {
    lb::v1::UndrainNodeRequest request;
    request.set_node_name(command.node_name);
    status = stub_->UndrainNode(NewContext().get(), request, &response);
  }
  if (!status.ok()) return NodeRpcError(command, status);
  if (options_.output == OutputFormat::kJson) {
    out_ << ToJson(response);
  } else {
    out_ << "node " << command.node_name << ": "
         << (drain ? "drained" : "active") << " (revision "
         << response.revision() << ")\n";
  }
  return absl::OkStatus();
}

absl::Status Runner::UpdateNode(const Command& command) {
  lb::v1::UpdateNodeRequest request;
  request.mutable_settings()->set_node_name(command.node_name);
  const bool weight = command.verb == Verb::kNodeWeight;
  if (weight) {
    request.mutable_settings()->set_weight(command.node_weight);
    request.mutable_update_mask()->add_paths("weight");
  } else {
    for (const std::string& prefix : command.local_addresses) {
      request.mutable_settings()->add_local_addresses(prefix);
    }
    request.mutable_update_mask()->add_paths("local_addresses");
  }
  lb::v1::NodeResponse response;
  grpc::Status status =
      stub_->UpdateNode(NewContext().get(), request, &response);
  if (!status.ok()) return NodeRpcError(command, status);
  if (options_.output == OutputFormat::kJson) {
    out_ << ToJson(response);
  } else if (weight) {
    out_ << "node " << command.node_name << ": weight "
         << response.node().settings().weight() << " (revision "
         << response.revision() << ")\n";
  } else {
    const auto& prefixes = response.node().settings().local_addresses();
    out_ << "node " << command.node_name << ": local addresses "
         << (prefixes.empty() ? std::string("none")
                              : absl::StrJoin(prefixes, ", "))
         << " (revision " << response.revision() << ")\n";
  }
  return absl::OkStatus();
}

absl::Status Runner::ShowStatus(const Command& command) {
  lb::v1::ListNodesResponse response;
  grpc::Status status = stub_->ListNodes(NewContext().get(),
                                         lb::v1::ListNodesRequest(), &response);
  if (!status.ok()) return RpcError(command, status, "", "");
  out_ << (options_.output == OutputFormat::kJson ? ToJson(response)
                                                  : FormatStatus(response));
  return absl::OkStatus();
}

}  // namespace anylb::lbctl
