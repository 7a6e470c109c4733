#include "tests/netns/attach_host.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "tests/netns/links.h"

namespace anylb::lab {

absl::StatusOr<std::unique_ptr<Netns>> AttachHost(
    const Topology& topology, const AttachHostOptions& options) {
  if (options.tag.empty() || options.port.empty()) {
    return absl::InvalidArgumentError(
        "AttachHost: tag and port must be set (the namespace's tag and the "
        "bridge-side veth's name)");
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Netns> host, Netns::Create(options.tag));
  RETURN_IF_ERROR(QuietHost(*host));
  RETURN_IF_ERROR(DisableRpFilter(*host));
  RETURN_IF_ERROR(AddVethPair(*host, Topology::kInterface, topology.switch_ns(),
                              options.port));
  if (!options.mac.empty()) {
    RETURN_IF_ERROR(SetMac(*host, Topology::kInterface, options.mac));
  }
  RETURN_IF_ERROR(
      AddBridgePort(topology.switch_ns(), Topology::kBridge, options.port));
  for (const std::string& address : options.addresses) {
    RETURN_IF_ERROR(AddAddress(*host, Topology::kInterface, address));
  }
  for (const auto& [destination, via] : options.routes) {
    RETURN_IF_ERROR(
        ReplaceRoute(*host, destination, via, Topology::kInterface));
  }
  if (options.forwarding) RETURN_IF_ERROR(EnableForwarding(*host));
  if (options.xdp_pass_on_peer) {
    RETURN_IF_ERROR(AttachXdpPass(topology.switch_ns(), options.port));
  }
  return host;
}

}  // namespace anylb::lab
