#include "controller/auth/auth.h"

#include <openssl/evp.h>

#include <fstream>
#include <set>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "grpc/grpc_security_constants.h"
#include "grpcpp/security/auth_context.h"

namespace anylb::controller {
namespace {

constexpr absl::string_view kControllerPrefix = "/lb.v1.Controller/";

bool ValidName(absl::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '_' && c != '-') {
      return false;
    }
  }
  return true;
}

std::string RoleList(const std::vector<Role>& roles) {
  return absl::StrJoin(roles, " or ", [](std::string* out, Role role) {
    absl::StrAppend(out, RoleName(role));
  });
}

}  // namespace

absl::string_view RoleName(Role role) {
  switch (role) {
    case Role::kReadOnly:
      return "read-only";
    case Role::kOperator:
      return "operator";
    case Role::kNode:
      return "node";
  }
  return "?";
}

std::optional<Role> ParseRole(absl::string_view text) {
  for (Role role : {Role::kReadOnly, Role::kOperator, Role::kNode}) {
    if (text == RoleName(role)) return role;
  }
  return std::nullopt;
}

TokenTable::Digest TokenTable::Sha256(absl::string_view text) {
  Digest digest{};
  unsigned int size = 0;
  EVP_Digest(text.data(), text.size(), digest.data(), &size, EVP_sha256(),
             nullptr);
  return digest;
}

absl::StatusOr<TokenTable> TokenTable::Parse(absl::string_view text,
                                             absl::string_view source) {
  TokenTable table;
  std::set<std::string> names;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    auto error = [&](const std::string& message) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ":", line_number, ": ", message));
    };
    if (size_t hash = line.find('#'); hash != absl::string_view::npos) {
      line = line.substr(0, hash);
    }
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    if (fields.empty()) continue;
    if (fields.size() != 3) {
      return error(absl::StrCat(
          "expected \"<role> <name> sha256:<64 hex digits>\", found ",
          fields.size(), " fields"));
    }
    std::optional<Role> role = ParseRole(fields[0]);
    if (!role) {
      return error(absl::StrCat("unknown role \"", fields[0],
                                "\"; one of read-only, operator, node"));
    }
    if (!ValidName(fields[1])) {
      return error(absl::StrCat("name \"", fields[1],
                                "\": use 1..63 of [A-Za-z0-9._-]"));
    }
    absl::string_view hex = fields[2];
    if (!absl::ConsumePrefix(&hex, "sha256:") || hex.size() != 64 ||
        !std::all_of(hex.begin(), hex.end(), absl::ascii_isxdigit)) {
      return error(absl::StrCat(
          "token hash \"", fields[2],
          "\": expected sha256: and 64 hex digits (printf %s TOKEN | "
          "sha256sum); the file holds hashes, never tokens"));
    }
    Digest digest;
    const std::string bytes = absl::HexStringToBytes(hex);
    std::copy(bytes.begin(), bytes.end(), digest.begin());
    if (!names.insert(std::string(fields[1])).second) {
      return error(absl::StrCat("name \"", fields[1], "\" appears twice"));
    }
    if (!table.by_digest_
             .emplace(digest, Principal{std::string(fields[1]), *role})
             .second) {
      return error(absl::StrCat("the token of \"", fields[1],
                                "\" is another name's token too"));
    }
  }
  return table;
}

absl::StatusOr<TokenTable> TokenTable::Load(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("cannot read token file \"", path, "\""));
  }
  std::stringstream text;
  text << in.rdbuf();
  return Parse(text.str(), path);
}

std::optional<Principal> TokenTable::Find(absl::string_view token) const {
  if (token.empty()) return std::nullopt;
  auto it = by_digest_.find(Sha256(token));
  if (it == by_digest_.end()) return std::nullopt;
  return it->second;
}

std::vector<Role> AllowedRoles(absl::string_view full_method) {
  if (absl::StartsWith(full_method, "/grpc.health.v1.Health/") ||
      absl::StartsWith(full_method, "/grpc.reflection.")) {
    return {Role::kReadOnly, Role::kOperator, Role::kNode};
  }
  absl::string_view method = full_method;
  if (!absl::ConsumePrefix(&method, kControllerPrefix)) return {};
  if (method == "RegisterNode" || method == "WatchConfig" ||
      method == "ReportStatus") {
    return {Role::kNode};
  }
  if (absl::StartsWith(method, "Get") || absl::StartsWith(method, "List")) {
    return {Role::kReadOnly, Role::kOperator};
  }
  static const std::set<absl::string_view>* const kOperatorMethods =
      new std::set<absl::string_view>{
          "CreateService", "UpdateService", "DeleteService", "AddBackend",
          "UpdateBackend", "RemoveBackend", "ApplyServices", "ZeroCounters",
          "UpdateNode",    "DrainNode",     "UndrainNode"};
  if (kOperatorMethods->contains(method)) return {Role::kOperator};
  return {};
}

grpc::Status Authenticator::Process(const InputMetadata& auth_metadata,
                                    grpc::AuthContext* context,
                                    OutputMetadata* consumed_auth_metadata,
                                    OutputMetadata* /*response_metadata*/) {
  std::optional<Principal> principal;
  auto authorization = auth_metadata.find("authorization");
  if (authorization != auth_metadata.end()) {
    absl::string_view value(authorization->second.data(),
                            authorization->second.size());
    if (!absl::ConsumePrefix(&value, "Bearer ")) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "authorization metadata must be \"Bearer <token>\"");
    }
    principal = tokens_->Find(absl::StripAsciiWhitespace(value));
    if (!principal) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "unknown bearer token");
    }
    consumed_auth_metadata->insert(std::make_pair(
        std::string(authorization->first.data(), authorization->first.size()),
        std::string(authorization->second.data(),
                    authorization->second.size())));
  } else {
    // A verified client certificate (mutual TLS): a node, named by its CN.
    // gRPC only puts x509 properties into the context for certificates
    // that the CA verified.
    std::vector<grpc::string_ref> cn =
        context->FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME);
    if (!cn.empty()) {
      const std::string name(cn.front().data(), cn.front().size());
      if (!ValidName(name)) {
        return grpc::Status(
            grpc::StatusCode::UNAUTHENTICATED,
            absl::StrCat("client certificate CN \"", name,
                         "\" is not a node name (1..63 of [A-Za-z0-9._-])"));
      }
      principal = Principal{name, Role::kNode};
    }
  }
  if (!principal) {
    return grpc::Status(
        grpc::StatusCode::UNAUTHENTICATED,
        "no credentials: send \"authorization: Bearer <token>\" (lbctl "
        "--token_file) or connect with a node certificate");
  }
  context->AddProperty(kPrincipalProperty, principal->name);
  context->AddProperty(kRoleProperty, std::string(RoleName(principal->role)));
  return grpc::Status::OK;
}

std::optional<Principal> CallerOf(const grpc::ServerContext& context) {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr) return std::nullopt;
  std::vector<grpc::string_ref> names =
      auth->FindPropertyValues(kPrincipalProperty);
  std::vector<grpc::string_ref> roles = auth->FindPropertyValues(kRoleProperty);
  if (names.empty() || roles.empty()) return std::nullopt;
  std::optional<Role> role =
      ParseRole(absl::string_view(roles.front().data(), roles.front().size()));
  if (!role) return std::nullopt;
  return Principal{std::string(names.front().data(), names.front().size()),
                   *role};
}

grpc::Status Authorize(const grpc::ServerContext& context,
                       absl::string_view full_method, bool enforce) {
  if (!enforce) return grpc::Status::OK;
  std::optional<Principal> caller = CallerOf(context);
  if (!caller) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "the call carries no authenticated principal");
  }
  const std::vector<Role> allowed = AllowedRoles(full_method);
  if (std::find(allowed.begin(), allowed.end(), caller->role) !=
      allowed.end()) {
    return grpc::Status::OK;
  }
  absl::string_view method = full_method;
  absl::ConsumePrefix(&method, kControllerPrefix);
  return grpc::Status(
      grpc::StatusCode::PERMISSION_DENIED,
      allowed.empty() ? absl::StrCat("no role may call ", full_method)
                      : absl::StrCat(caller->name, " (role ",
                                     RoleName(caller->role), ") may not call ",
                                     method, "; it needs ", RoleList(allowed)));
}

}  // namespace anylb::controller
