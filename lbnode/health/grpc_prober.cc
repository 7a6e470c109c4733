// GrpcProber: grpc.health.v1.Health/Check calls on one CompletionQueue.
//
// Ownership and threading: each probe is a heap Call, owned by the prober
// from Start() until the completion-queue thread has taken its tag, called
// `done` and deleted it. State::pending (under State::mu) lists the calls
// in flight so that the destructor can cancel them; the cache of channels
// is under the same mutex. The destructor cancels every pending call (each
// then completes with "checker stopped"), waits for `pending` to empty,
// shuts the queue down and joins the thread.

#include "lbnode/health/grpc_prober.h"

#include <chrono>
#include <string>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/alarm.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/completion_queue.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "grpcpp/support/status.h"

namespace anylb::health {
namespace {

using ::grpc::health::v1::Health;
using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;

constexpr absl::Duration kChannelIdle = absl::Minutes(1);
constexpr absl::Duration kSweepEvery = absl::Seconds(10);
// A real server that was down is probed again within about this long of
// coming back (gRPC's default reconnect backoff grows to 120 s).
constexpr int kMaxReconnectBackoffMs = 1000;

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    default:
      return "code?";
  }
}

// Call is one probe in flight (see the file comment).
struct Call {
  grpc::ClientContext context;
  HealthCheckRequest request;
  HealthCheckResponse response;
  grpc::Status status;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<grpc::ClientAsyncResponseReader<HealthCheckResponse>> reader;
  // A probe refused before any RPC completes through an alarm, so that
  // `done` still runs on the queue's thread.
  std::string refused;
  std::unique_ptr<grpc::Alarm> alarm;
  ProbeDone done;
  absl::Time start;
  absl::Duration timeout;
};

std::string ChannelKey(const std::string& target, bool tls,
                       const std::string& authority) {
  return absl::StrCat(target, tls ? " tls " : " plain ", authority);
}

std::string Target(const Endpoint& endpoint) {
  // ipv4:/ipv6: URIs: the address as is, no name resolution.
  return absl::StrCat(endpoint.is_v4() ? "ipv4:" : "ipv6:",
                      endpoint.ToString());
}

}  // namespace

struct GrpcProber::State {
  grpc::CompletionQueue cq;
  std::thread thread;

  absl::Mutex mu;
  bool stopping ABSL_GUARDED_BY(mu) = false;
  absl::flat_hash_set<Call*> pending ABSL_GUARDED_BY(mu);
  struct CachedChannel {
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<Health::Stub> stub;
    absl::Time last_used;
  };
  absl::flat_hash_map<std::string, CachedChannel> channels ABSL_GUARDED_BY(mu);
  absl::Time last_sweep ABSL_GUARDED_BY(mu) = absl::Now();

  CachedChannel& Channel(const Endpoint& target, const lb::v1::GrpcCheck& check)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  void Loop();
};

GrpcProber::State::CachedChannel& GrpcProber::State::Channel(
    const Endpoint& target, const lb::v1::GrpcCheck& check) {
  absl::Time now = absl::Now();
  if (now - last_sweep >= kSweepEvery) {
    last_sweep = now;
    absl::erase_if(channels, [now](const auto& entry) {
      return now - entry.second.last_used >= kChannelIdle;
    });
  }
  std::string uri = Target(target);
  CachedChannel& cached =
      channels[ChannelKey(uri, check.tls(), check.authority())];
  cached.last_used = now;
  if (cached.channel != nullptr) return cached;

  grpc::ChannelArguments args;
  if (!check.authority().empty()) {
    // Also the TLS server name (SNI and certificate check).
    args.SetString(GRPC_ARG_DEFAULT_AUTHORITY, check.authority());
  }
  // A connection of its own per cached channel, never shared with the
  // daemon's other channels: a probe sees this real server's state.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, kMaxReconnectBackoffMs);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      check.tls()
          // Empty roots: gRPC loads the system's trust store.
          ? grpc::SslCredentials(grpc::SslCredentialsOptions())
          : grpc::InsecureChannelCredentials();
  cached.channel = grpc::CreateCustomChannel(uri, credentials, args);
  cached.stub = Health::NewStub(cached.channel);
  return cached;
}

void GrpcProber::State::Loop() {
  void* tag = nullptr;
  bool ok = false;
  while (cq.Next(&tag, &ok)) {
    std::unique_ptr<Call> call(static_cast<Call*>(tag));
    bool stopped;
    {
      absl::MutexLock lock(&mu);
      pending.erase(call.get());
      stopped = stopping;
    }
    ProbeResult result;
    result.latency = absl::Now() - call->start;
    if (!call->refused.empty()) {
      result.error = std::move(call->refused);
    } else if (call->status.ok()) {
      if (call->response.status() == HealthCheckResponse::SERVING) {
        result.passed = true;
      } else {
        result.error = absl::StrCat(
            "status ",
            HealthCheckResponse::ServingStatus_Name(call->response.status()));
      }
    } else if (stopped &&
               call->status.error_code() == grpc::StatusCode::CANCELLED) {
      result.error = "checker stopped";
    } else if (call->status.error_code() ==
               grpc::StatusCode::DEADLINE_EXCEEDED) {
      result.error =
          absl::StrCat("timed out after ", absl::FormatDuration(call->timeout));
    } else {
      result.error = absl::StrCat("rpc ", CodeName(call->status.error_code()),
                                  ": ", call->status.error_message());
    }
    std::move(call->done)(std::move(result));
  }
}

absl::StatusOr<std::unique_ptr<GrpcProber>> GrpcProber::Create() {
  std::unique_ptr<GrpcProber> prober(new GrpcProber());
  prober->state_ = std::make_unique<State>();
  State* state = prober->state_.get();
  state->thread = std::thread([state] { state->Loop(); });
  return prober;
}

GrpcProber::~GrpcProber() {
  if (state_ == nullptr) return;
  {
    absl::MutexLock lock(&state_->mu);
    state_->stopping = true;
    for (Call* call : state_->pending) call->context.TryCancel();
    auto drained = [](absl::flat_hash_set<Call*>* pending) {
      return pending->empty();
    };
    state_->mu.Await(absl::Condition(+drained, &state_->pending));
    state_->channels.clear();
  }
  state_->cq.Shutdown();
  state_->thread.join();
}

void GrpcProber::Start(const ProbeRequest& request, ProbeDone done) {
  auto call = std::make_unique<Call>();
  call->start = absl::Now();
  call->timeout = request.timeout;
  call->done = std::move(done);
  Call* raw = call.get();
  absl::MutexLock lock(&state_->mu);
  if (state_->stopping) {
    call->refused = "checker stopped";
  } else if (!request.check.has_grpc()) {
    call->refused = "not a gRPC check (HealthCheck.grpc is not set)";
  }
  if (!call->refused.empty()) {
    call->alarm = std::make_unique<grpc::Alarm>();
    call->alarm->Set(&state_->cq, gpr_now(GPR_CLOCK_MONOTONIC), raw);
    state_->pending.insert(call.release());
    return;
  }
  const lb::v1::GrpcCheck& check = request.check.grpc();
  State::CachedChannel& cached = state_->Channel(request.target, check);
  call->channel = cached.channel;
  call->request.set_service(check.service_name());
  call->context.set_deadline(std::chrono::system_clock::now() +
                             absl::ToChronoNanoseconds(request.timeout));
  // Fail fast (UNAVAILABLE) when the server cannot be reached rather than
  // waiting for it until the deadline.
  call->context.set_wait_for_ready(false);
  call->reader =
      cached.stub->AsyncCheck(&call->context, call->request, &state_->cq);
  call->reader->Finish(&call->response, &call->status, raw);
  state_->pending.insert(call.release());
}

}  // namespace anylb::health
