// DropReason: why the dataplane dropped a packet. Every drop is counted by
// reason, and DropReasonName() gives the stable label for metrics
// (anylb_dataplane_drops_total{reason="truncated_ipv4_header"}).
//
// Names are API: dashboards and alerts use them. Add reasons before kCount
// (the order of the enumerators may change, the names may not), never reuse
// or rename one.

#ifndef ANYLB_LBNODE_DATAPLANE_DROP_REASON_H_
#define ANYLB_LBNODE_DATAPLANE_DROP_REASON_H_

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace anylb::dataplane {

enum class DropReason : uint8_t {
  kNone = 0,

  // --- Parser: Ethernet ---
  kTruncatedEthernet,  // Shorter than an Ethernet header (14 bytes).
  kTruncatedVlan,      // 802.1Q TPID but no room for the tag.
  kFrameTooLarge,      // Longer than 65535 bytes (offsets are 16-bit).

  // --- Parser: IPv4 (RFC 791) ---
  kTruncatedIpv4Header,         // Fewer than 20 or IHL*4 bytes in the frame.
  kBadIpVersion,                // Version nibble disagrees with the EtherType.
  kBadIpv4HeaderLength,         // IHL < 5.
  kBadIpv4TotalLength,          // Total length < IHL*4.
  kIpv4TotalLengthBeyondFrame,  // Total length past the end of the frame.

  // --- Parser: IPv6 (RFC 8200) ---
  kTruncatedIpv6Header,           // Fewer than 40 bytes.
  kIpv6PayloadLengthBeyondFrame,  // Payload length past the end of the frame.
  kTruncatedIpv6ExtensionHeader,  // An extension header runs past the payload.
  kIpv6ExtensionChainTooLong,  // More headers or bytes than the parser walks.
  kIpv6MisplacedHopByHop,      // Hop-by-Hop not first (RFC 8200 §4.1).

  // --- Parser: transport ---
  kTruncatedTcpHeader,         // Fewer than 20 bytes of TCP header.
  kBadTcpDataOffset,           // Data offset < 5.
  kTcpDataOffsetBeyondPacket,  // Options run past the end of the datagram.
  kTruncatedUdpHeader,         // Fewer than 8 bytes of UDP header.
  kBadUdpLength,               // UDP length < 8 or past the datagram.
  kIpv6UdpZeroChecksum,        // UDP checksum 0 over IPv6 (RFC 8200 §8.1).
  kTruncatedIcmpHeader,        // Fewer than 8 bytes of ICMP/ICMPv6 header.

  // --- Parser: ICMP errors (RFC 792, RFC 4443) quoting a datagram ---
  kIcmpInnerIpTruncated,  // The quoted IP header (or its ext headers) is cut.
  kIcmpInnerBadIp,        // Quoted header of the wrong version or IHL < 5.
  kIcmpInnerL4Truncated,  // Fewer than the 8 quoted transport bytes.

  // --- Engine: lookups and forwarding ---
  kNoService,             // Destination is not a VIP:port we serve.
  kNoBackend,             // The service has no usable backend.
  kUnsupportedProtocol,   // A transport protocol the service cannot carry.
  kTtlExceeded,           // TTL / hop limit would reach zero.
  kMtuExceeded,           // Encapsulated packet exceeds the egress MTU.
  kNoRoute,               // No next hop for the destination.
  kNoNeighbor,            // Next hop has no resolved link-layer address.
  kNoFlow,                // A reply or ICMP error matching no known flow.
  kFlowTableFull,         // No room for a new flow.
  kNoLocalPort,           // FULLNAT: local address/port pool exhausted.
  kFragmentNotSupported,  // A fragment where the mode cannot forward one.
  kNatReplyConflict,      // NAT/FULLNAT: the reply key is another flow's.
  kFragmentUnmatched,     // NAT/FULLNAT: a later fragment whose first was
                          // not seen (or whose record expired).

  kCount,  // Number of reasons; not a reason.
};

inline constexpr size_t kDropReasonCount =
    static_cast<size_t>(DropReason::kCount);

// DropReasonName returns the stable snake_case metric label of `reason`
// ("none" for kNone, "unknown" for values out of range).
constexpr std::string_view DropReasonName(DropReason reason) {
  switch (reason) {
    case DropReason::kNone:
      return "none";
    case DropReason::kTruncatedEthernet:
      return "truncated_ethernet";
    case DropReason::kTruncatedVlan:
      return "truncated_vlan";
    case DropReason::kFrameTooLarge:
      return "frame_too_large";
    case DropReason::kTruncatedIpv4Header:
      return "truncated_ipv4_header";
    case DropReason::kBadIpVersion:
      return "bad_ip_version";
    case DropReason::kBadIpv4HeaderLength:
      return "bad_ipv4_header_length";
    case DropReason::kBadIpv4TotalLength:
      return "bad_ipv4_total_length";
    case DropReason::kIpv4TotalLengthBeyondFrame:
      return "ipv4_total_length_beyond_frame";
    case DropReason::kTruncatedIpv6Header:
      return "truncated_ipv6_header";
    case DropReason::kIpv6PayloadLengthBeyondFrame:
      return "ipv6_payload_length_beyond_frame";
    case DropReason::kTruncatedIpv6ExtensionHeader:
      return "truncated_ipv6_extension_header";
    case DropReason::kIpv6ExtensionChainTooLong:
      return "ipv6_extension_chain_too_long";
    case DropReason::kIpv6MisplacedHopByHop:
      return "ipv6_misplaced_hop_by_hop";
    case DropReason::kTruncatedTcpHeader:
      return "truncated_tcp_header";
    case DropReason::kBadTcpDataOffset:
      return "bad_tcp_data_offset";
    case DropReason::kTcpDataOffsetBeyondPacket:
      return "tcp_data_offset_beyond_packet";
    case DropReason::kTruncatedUdpHeader:
      return "truncated_udp_header";
    case DropReason::kBadUdpLength:
      return "bad_udp_length";
    case DropReason::kIpv6UdpZeroChecksum:
      return "ipv6_udp_zero_checksum";
    case DropReason::kTruncatedIcmpHeader:
      return "truncated_icmp_header";
    case DropReason::kIcmpInnerIpTruncated:
      return "icmp_inner_ip_truncated";
    case DropReason::kIcmpInnerBadIp:
      return "icmp_inner_bad_ip";
    case DropReason::kIcmpInnerL4Truncated:
      return "icmp_inner_l4_truncated";
    case DropReason::kNoService:
      return "no_service";
    case DropReason::kNoBackend:
      return "no_backend";
    case DropReason::kUnsupportedProtocol:
      return "unsupported_protocol";
    case DropReason::kTtlExceeded:
      return "ttl_exceeded";
    case DropReason::kMtuExceeded:
      return "mtu_exceeded";
    case DropReason::kNoRoute:
      return "no_route";
    case DropReason::kNoNeighbor:
      return "no_neighbor";
    case DropReason::kNoFlow:
      return "no_flow";
    case DropReason::kFlowTableFull:
      return "flow_table_full";
    case DropReason::kNoLocalPort:
      return "no_local_port";
    case DropReason::kFragmentNotSupported:
      return "fragment_not_supported";
    case DropReason::kNatReplyConflict:
      return "nat_reply_conflict";
    case DropReason::kFragmentUnmatched:
      return "fragment_unmatched";
    case DropReason::kCount:
      break;
  }
  return "unknown";
}

}  // namespace anylb::dataplane

#endif  // ANYLB_LBNODE_DATAPLANE_DROP_REASON_H_
