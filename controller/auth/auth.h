// Authentication and authorization of the controller's callers.
//
// Who: a caller is a Principal — a name and one Role — identified either by
// a bearer token (`authorization: Bearer <token>` metadata; lbctl and
// automation) or, for nodes, by the client certificate of a mutual-TLS
// connection (its CN is the node's name; role node). Tokens live in a
// token file that holds only their SHA-256, so a leaked file leaks no token:
//
//   # role       name        token hash (printf %s TOKEN | sha256sum)
//   operator     alice       sha256:3b1f...
//   read-only    grafana     sha256:9c0e...
//   node         lb7         sha256:...     (nodes without a certificate)
//
// What: each RPC of lb.v1.Controller needs one of a set of roles
// (AllowedRoles): read-only callers may use Get*/List*/GetStats; operators
// everything but the node RPCs; nodes RegisterNode, WatchConfig and
// ReportStatus. grpc.health.v1 and server reflection are open to every
// authenticated caller.
//
// On the wire: Authenticator is a grpc::AuthMetadataProcessor; it runs
// before each call, rejects calls without valid credentials
// (UNAUTHENTICATED) and records the principal in the call's AuthContext.
// Each handler then calls Authorize(context, method) (PERMISSION_DENIED
// when the role is not enough) before it reads or changes anything.
//
// Threading: TokenTable is immutable after Parse; Authenticator and
// Authorize are thread-safe.

#ifndef ANYLB_CONTROLLER_AUTH_AUTH_H_
#define ANYLB_CONTROLLER_AUTH_AUTH_H_

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/security/auth_metadata_processor.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/status.h"

namespace anylb::controller {

enum class Role { kReadOnly, kOperator, kNode };

// RoleName: "read-only", "operator", "node" (the token file's spelling).
absl::string_view RoleName(Role role);
std::optional<Role> ParseRole(absl::string_view text);

struct Principal {
  std::string name;
  Role role = Role::kReadOnly;
};

// TokenTable maps SHA-256 token hashes to principals.
class TokenTable {
 public:
  using Digest = std::array<uint8_t, 32>;

  TokenTable() = default;

  // Parse reads the token file format above. Errors name `source` and the
  // line: "tokens.txt:3: unknown role \"admin\"; one of read-only,
  // operator, node". Names are unique; so are hashes.
  static absl::StatusOr<TokenTable> Parse(absl::string_view text,
                                          absl::string_view source);
  // Load reads and parses a file.
  static absl::StatusOr<TokenTable> Load(const std::string& path);

  // Find hashes `token` and looks it up (a comparison of digests, whose
  // timing does not depend on the token's characters).
  std::optional<Principal> Find(absl::string_view token) const;

  size_t size() const { return by_digest_.size(); }

  static Digest Sha256(absl::string_view text);

 private:
  std::map<Digest, Principal> by_digest_;
};

// AllowedRoles: the roles that may call `full_method`
// ("/lb.v1.Controller/CreateService"); empty for an unknown method.
std::vector<Role> AllowedRoles(absl::string_view full_method);

// Property names in the call's AuthContext.
inline constexpr char kPrincipalProperty[] = "anylb.principal";
inline constexpr char kRoleProperty[] = "anylb.role";

// Authenticator: see the file comment.
class Authenticator final : public grpc::AuthMetadataProcessor {
 public:
  explicit Authenticator(std::shared_ptr<const TokenTable> tokens)
      : tokens_(std::move(tokens)) {}

  bool IsBlocking() const override { return false; }

  grpc::Status Process(const InputMetadata& auth_metadata,
                       grpc::AuthContext* context,
                       OutputMetadata* consumed_auth_metadata,
                       OutputMetadata* response_metadata) override;

 private:
  std::shared_ptr<const TokenTable> tokens_;
};

// Authorize: OK when the call's principal may call `full_method`;
// PERMISSION_DENIED naming the principal, its role and the roles needed;
// UNAUTHENTICATED when the call carries no principal. With `enforce`
// false (the documented insecure mode for local trials) everything is
// allowed.
grpc::Status Authorize(const grpc::ServerContext& context,
                       absl::string_view full_method, bool enforce);

// CallerOf: the call's principal, if authenticated.
std::optional<Principal> CallerOf(const grpc::ServerContext& context);

}  // namespace anylb::controller

#endif  // ANYLB_CONTROLLER_AUTH_AUTH_H_
