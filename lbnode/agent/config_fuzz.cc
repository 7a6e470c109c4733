// Fuzz target over the config file path: no input may crash ParseConfigYaml
// or BuildEngineConfig; errors are INVALID_ARGUMENT with a message; and a
// parsed config survives a round trip through the proto JSON mapping.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/config/config_yaml.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "lbnode/agent/snapshot_builder.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<lb::v1::ConfigSnapshot> config =
      anylb::config::ParseConfigYaml(text, "fuzz.yaml");
  if (!config.ok()) {
    if (config.status().code() != absl::StatusCode::kInvalidArgument ||
        config.status().message().empty()) {
      std::abort();
    }
    return 0;
  }
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  if (!google::protobuf::util::MessageToJsonString(*config, &json, options)
           .ok()) {
    std::abort();
  }
  absl::StatusOr<lb::v1::ConfigSnapshot> again =
      anylb::config::ParseConfigYaml(json, "fuzz.json");
  if (!again.ok() ||
      !google::protobuf::util::MessageDifferencer::Equals(*config, *again)) {
    std::abort();
  }
  anylb::agent::NodeIdentity identity;
  identity.tunnel_source_v4 = anylb::IpAddress::FromV4(0xcb007101);
  absl::StatusOr<anylb::agent::EngineConfig> built =
      anylb::agent::BuildEngineConfig(*config, identity);
  if (!built.ok() && built.status().message().empty()) std::abort();
  return 0;
}
