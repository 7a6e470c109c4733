// anylb-controller: the fleet's gRPC controller (lb.v1.Controller, server
// reflection, grpc.health.v1) over a SQLite store, with Prometheus
// /metrics. Flags and wiring only; the work is in controller/service and
// controller/store.
//
//   anylb-controller --store=/var/lib/anylb/controller.db
//       --tls_cert=controller.crt --tls_key=controller.key
//       --client_ca=ca.crt --token_file=/etc/anylb/tokens
//
// Signals: SIGTERM/SIGINT stop (watch streams end with UNAVAILABLE so nodes
// reconnect to the next controller), SIGHUP re-reads the token file (a bad
// file is reported and the running tokens kept).

#include <signal.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/log.h"
#include "common/metrics/metrics_server.h"
#include "common/metrics/registry.h"
#include "common/status_macros.h"
#include "controller/auth/auth.h"
#include "controller/service/controller_service.h"
#include "controller/store/sqlite_store.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "gRPC address: HOST:PORT or [IPv6]:PORT (port 0: any free port, "
          "printed at start).");
ABSL_FLAG(std::string, store, "",
          "SQLite file of the store (required); created if absent. One "
          "controller per file.");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate (chain) of the controller (required unless "
          "--insecure).");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert.");
ABSL_FLAG(std::string, client_ca, "",
          "PEM CA that signs node certificates (mutual TLS; the certificate's "
          "CN is the node's name). Empty: nodes authenticate with tokens.");
ABSL_FLAG(std::string, token_file, "",
          "Bearer tokens: lines \"<role> <name> sha256:<hex>\" with role "
          "read-only, operator or node (see controller/auth/auth.h). Re-read "
          "on SIGHUP.");
ABSL_FLAG(bool, insecure, false,
          "Plaintext gRPC and no authentication, for local trials only; "
          "--listen must then be a loopback address.");
ABSL_FLAG(std::string, metrics_address, "127.0.0.1:9465",
          "Serve Prometheus metrics on http://ADDRESS/metrics; \"\" turns the "
          "endpoint off.");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warning or error.");
ABSL_FLAG(absl::Duration, health_report_ttl, absl::Seconds(15),
          "A node's health reports count for the fleet's verdict until they "
          "are this old (a node that goes silent stops counting).");
ABSL_FLAG(double, health_down_fraction, 0.5,
          "A real server is down for the whole fleet when the nodes that see "
          "it down are more than this fraction of the nodes that check it "
          "(0.5: a majority; 0: any one node). In [0, 1).");

namespace anylb::controller {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& flag,
                                     const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("--", flag, ": cannot read \"", path, "\""));
  }
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

bool IsLoopback(const std::string& address) {
  return absl::StartsWith(address, "127.") ||
         absl::StartsWith(address, "localhost:") ||
         absl::StartsWith(address, "[::1]:");
}

// ReloadableAuthenticator: the Authenticator over the current token table,
// replaced on SIGHUP.
class ReloadableAuthenticator final : public grpc::AuthMetadataProcessor {
 public:
  explicit ReloadableAuthenticator(std::shared_ptr<const TokenTable> tokens)
      : current_(std::make_shared<Authenticator>(std::move(tokens))) {}
  bool IsBlocking() const override { return false; }
  grpc::Status Process(const InputMetadata& auth_metadata,
                       grpc::AuthContext* context,
                       OutputMetadata* consumed_auth_metadata,
                       OutputMetadata* response_metadata) override {
    std::shared_ptr<Authenticator> current;
    {
      absl::MutexLock lock(&mu_);
      current = current_;
    }
    return current->Process(auth_metadata, context, consumed_auth_metadata,
                            response_metadata);
  }
  void Replace(std::shared_ptr<const TokenTable> tokens) {
    auto next = std::make_shared<Authenticator>(std::move(tokens));
    absl::MutexLock lock(&mu_);
    current_ = std::move(next);
  }

 private:
  absl::Mutex mu_;
  std::shared_ptr<Authenticator> current_ ABSL_GUARDED_BY(mu_);
};

absl::StatusOr<std::shared_ptr<const TokenTable>> LoadTokens() {
  const std::string path = absl::GetFlag(FLAGS_token_file);
  if (path.empty()) return std::make_shared<const TokenTable>();
  ASSIGN_OR_RETURN(TokenTable table, TokenTable::Load(path));
  return std::make_shared<const TokenTable>(std::move(table));
}

int Run() {
  const bool insecure = absl::GetFlag(FLAGS_insecure);
  const std::string listen = absl::GetFlag(FLAGS_listen);
  if (absl::GetFlag(FLAGS_store).empty()) {
    std::fprintf(stderr,
                 "anylb-controller: --store is required (the SQLite file, "
                 "e.g. /var/lib/anylb/controller.db)\n");
    return 2;
  }
  if (insecure && !IsLoopback(listen)) {
    std::fprintf(stderr,
                 "anylb-controller: --insecure serves without TLS or "
                 "authentication, so --listen must be a loopback address "
                 "(127.0.0.1:PORT or [::1]:PORT), not \"%s\"\n",
                 listen.c_str());
    return 2;
  }
  if (!insecure && (absl::GetFlag(FLAGS_tls_cert).empty() ||
                    absl::GetFlag(FLAGS_tls_key).empty())) {
    std::fprintf(stderr,
                 "anylb-controller: --tls_cert and --tls_key are required "
                 "(deploy/make-certs.sh makes a trial set), or --insecure for "
                 "a local trial\n");
    return 2;
  }
  const FleetHealthOptions health{
      .report_ttl = absl::GetFlag(FLAGS_health_report_ttl),
      .down_fraction = absl::GetFlag(FLAGS_health_down_fraction)};
  if (absl::Status s = ValidateFleetHealthOptions(health); !s.ok()) {
    std::fprintf(stderr, "anylb-controller: %s\n",
                 std::string(s.message()).c_str());
    return 2;
  }

  // Block the signals we wait for before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<std::unique_ptr<SqliteStore>> store =
      SqliteStore::Open({.path = absl::GetFlag(FLAGS_store)});
  if (!store.ok()) {
    std::fprintf(stderr, "anylb-controller: %s\n",
                 std::string(store.status().message()).c_str());
    return 1;
  }

  std::shared_ptr<grpc::ServerCredentials> credentials;
  std::shared_ptr<ReloadableAuthenticator> authenticator;
  if (insecure) {
    credentials = grpc::InsecureServerCredentials();
  } else {
    absl::StatusOr<std::shared_ptr<const TokenTable>> tokens = LoadTokens();
    absl::StatusOr<std::string> cert =
        ReadFile("tls_cert", absl::GetFlag(FLAGS_tls_cert));
    absl::StatusOr<std::string> key =
        ReadFile("tls_key", absl::GetFlag(FLAGS_tls_key));
    absl::StatusOr<std::string> ca =
        absl::GetFlag(FLAGS_client_ca).empty()
            ? absl::StatusOr<std::string>("")
            : ReadFile("client_ca", absl::GetFlag(FLAGS_client_ca));
    for (const absl::Status& s :
         {tokens.status(), cert.status(), key.status(), ca.status()}) {
      if (!s.ok()) {
        std::fprintf(stderr, "anylb-controller: %s\n",
                     std::string(s.message()).c_str());
        return 1;
      }
    }
    grpc::SslServerCredentialsOptions options(
        ca->empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                    : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
    options.pem_root_certs = *ca;
    options.pem_key_cert_pairs.push_back({*key, *cert});
    credentials = grpc::SslServerCredentials(options);
    authenticator = std::make_shared<ReloadableAuthenticator>(*tokens);
    credentials->SetAuthMetadataProcessor(authenticator);
  }

  ControllerService service(store->get(),
                            {.enforce_auth = !insecure, .health = health});
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, credentials, &port);
  builder.RegisterService(&service);
  // Snapshots of large fleets are big: allow up to 256 MiB messages.
  builder.SetMaxSendMessageSize(256 << 20);
  builder.SetMaxReceiveMessageSize(256 << 20);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr,
                 "anylb-controller: cannot listen on \"%s\" (in use, or not "
                 "an address of this host?)\n",
                 listen.c_str());
    return 1;
  }

  metrics::Registry registry;
  metrics::ScopedCollector collector(
      &registry, "controller",
      [&service](std::vector<metrics::MetricFamily>* out) {
        return service.Collect(out);
      });
  std::unique_ptr<metrics::MetricsServer> metrics_server;
  if (!absl::GetFlag(FLAGS_metrics_address).empty()) {
    absl::StatusOr<std::unique_ptr<metrics::MetricsServer>> started =
        metrics::MetricsServer::Start(absl::GetFlag(FLAGS_metrics_address),
                                      &registry);
    if (!started.ok()) {
      std::fprintf(stderr, "anylb-controller: %s\n",
                   std::string(started.status().message()).c_str());
      return 1;
    }
    metrics_server = std::move(*started);
  }

  const std::string host = listen.substr(0, listen.rfind(':'));
  LB_LOG(kInfo) << "listening on " << host << ":" << port << " ("
                << (insecure ? "INSECURE: no TLS, no authentication"
                    : absl::GetFlag(FLAGS_client_ca).empty()
                        ? "TLS, tokens"
                        : "TLS, tokens, node certificates")
                << "), store " << (*store)->path() << " at revision "
                << (*store)->Current()->revision;
  if (metrics_server != nullptr) {
    const std::string address = absl::GetFlag(FLAGS_metrics_address);
    LB_LOG(kInfo) << "metrics on http://"
                  << address.substr(0, address.rfind(':')) << ":"
                  << metrics_server->port() << "/metrics";
  }

  for (;;) {
    int signal = 0;
    sigwait(&signals, &signal);
    if (signal == SIGHUP) {
      if (authenticator == nullptr) {
        LB_LOG(kInfo) << "SIGHUP: no token file in insecure mode";
        continue;
      }
      absl::StatusOr<std::shared_ptr<const TokenTable>> tokens = LoadTokens();
      if (!tokens.ok()) {
        LB_LOG(kError) << "SIGHUP: " << tokens.status().message()
                       << "; keeping the running tokens";
        continue;
      }
      LB_LOG(kInfo) << "SIGHUP: " << (*tokens)->size() << " token(s) loaded";
      authenticator->Replace(*tokens);
      continue;
    }
    LB_LOG(kInfo) << (signal == SIGINT ? "SIGINT" : "SIGTERM") << ": stopping";
    break;
  }
  service.Shutdown();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  return 0;
}

}  // namespace
}  // namespace anylb::controller

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "the anylb controller: stores services, pushes them to lbnodes.\n"
      "  anylb-controller --store=FILE --tls_cert=F --tls_key=F "
      "[--client_ca=F] [--token_file=F]\n"
      "  anylb-controller --store=FILE --insecure   (local trials)");
  absl::ParseCommandLine(argc, argv);
  absl::StatusOr<anylb::log::Level> level =
      anylb::log::ParseLogLevel(absl::GetFlag(FLAGS_log_level));
  if (!level.ok()) {
    std::fprintf(stderr, "anylb-controller: --log_level: %s\n",
                 std::string(level.status().message()).c_str());
    return 2;
  }
  anylb::log::SetLogLevel(*level);
  return anylb::controller::Run();
}
