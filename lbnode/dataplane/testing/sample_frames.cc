#include "lbnode/dataplane/testing/sample_frames.h"

#include <span>
#include <string>

#include "lbnode/dataplane/testing/packet_builder.h"

namespace anylb::dataplane_testing {
namespace {

constexpr char kClientMac[] = "02:00:00:00:00:01";
constexpr char kDirectorMac[] = "02:00:00:00:00:02";

// Addresses by family: client, VIP, a router that sends ICMP errors, and a
// tunnel endpoint pair.
struct Addresses {
  const char* client;
  const char* vip;
  const char* router;
  const char* tunnel_src;
  const char* tunnel_dst;
};

constexpr Addresses kV4 = {"192.0.2.1", "198.51.100.10", "203.0.113.9",
                           "203.0.113.1", "198.51.100.20"};
constexpr Addresses kV6 = {"2001:db8::1", "2001:db8:100::10", "2001:db8:ff::9",
                           "2001:db8:ff::1", "2001:db8:100::20"};

PacketBuilder Eth() { return PacketBuilder().Eth(kClientMac, kDirectorMac); }

PacketBuilder& Ip(PacketBuilder& b, bool v4, const char* src, const char* dst) {
  return v4 ? b.Ipv4(src, dst) : b.Ipv6(src, dst);
}

void AddFamily(bool v4, std::vector<SampleFrame>& out) {
  const Addresses& a = v4 ? kV4 : kV6;
  const std::string f = v4 ? "ipv4_" : "ipv6_";
  auto add = [&](const std::string& name, PacketBuilder b) {
    out.push_back({f + name, b.Build()});
  };
  PacketBuilder b;

  b = Eth();
  Ip(b, v4, a.client, a.vip).Tcp(40000, 80).Flags(kSyn);
  add("tcp_syn", b);

  b = Eth();
  Ip(b, v4, a.client, a.vip)
      .Tcp(40001, 443)
      .Flags(kPsh | kAck)
      .TcpOptions({0x01, 0x01, 0x08, 0x0a, 0, 0, 0, 1, 0, 0, 0, 2})
      .Payload("GET / HTTP/1.1\r\nHost: example\r\n\r\n");
  add("tcp_options_payload", b);

  b = Eth();
  Ip(b, v4, a.client, a.vip).Udp(5353, 53).Payload("query");
  add("udp", b);

  b = Eth();
  Ip(b, v4, a.client, a.vip).Udp(5353, 53).Payload("q").PadTo(60);
  add("udp_padded", b);

  b = Eth().Vlan(100, 3);
  Ip(b, v4, a.client, a.vip).Tcp(40002, 80).Flags(kAck).Payload("x");
  add("vlan_tcp", b);

  b = Eth();
  if (v4) {
    b.Ipv4(a.client, a.vip).IcmpV4(kIcmpEchoRequest, 0).IcmpRest(0x12340001);
  } else {
    b.Ipv6(a.client, a.vip).IcmpV6(kIcmpV6EchoRequest, 0).IcmpRest(0x12340001);
  }
  b.Payload("ping");
  add("icmp_echo", b);

  // First and non-first fragments of a UDP datagram.
  b = Eth();
  if (v4) {
    b.Ipv4(a.client, a.vip).Id(0x4242).MoreFragments();
  } else {
    b.Ipv6(a.client, a.vip).Fragment(0, true, 0x42424242);
  }
  b.Udp(5353, 53).Payload(std::string(64, 'a'));
  add("udp_first_fragment", b);

  b = Eth();
  if (v4) {
    b.Ipv4(a.client, a.vip).Id(0x4242).FragmentOffset(9).Protocol(17);
  } else {
    b.Ipv6(a.client, a.vip).Fragment(9, false, 0x42424242).Protocol(17);
  }
  b.Payload(std::string(40, 'b'));
  add("udp_later_fragment", b);

  // ICMP errors quoting a reply the VIP sent (the "backend's" packet).
  PacketBuilder quoted_tcp;
  Ip(quoted_tcp, v4, a.vip, a.client)
      .Tcp(80, 40000)
      .Flags(kAck)
      .Payload(std::string(100, 'r'));
  std::vector<uint8_t> tcp_bytes = quoted_tcp.Build();
  PacketBuilder quoted_udp;
  Ip(quoted_udp, v4, a.vip, a.client).Udp(53, 5353).Payload("answer");
  std::vector<uint8_t> udp_bytes = quoted_udp.Build();
  const size_t quote = v4 ? 20 + 8 : 40 + 8;  // Header + 8 bytes (RFC 792).

  b = Eth();
  if (v4) {
    b.Ipv4(a.router, a.vip)
        .IcmpV4(kIcmpDestUnreachable, kIcmpCodeFragNeeded)
        .IcmpRest(1400);
  } else {
    b.Ipv6(a.router, a.vip).IcmpV6(kIcmpV6PacketTooBig, 0).IcmpRest(1280);
  }
  b.Embed(std::span(tcp_bytes).first(quote));
  add("icmp_too_big_quoting_tcp", b);

  b = Eth();
  if (v4) {
    b.Ipv4(a.router, a.vip).IcmpV4(kIcmpTimeExceeded, 0);
  } else {
    b.Ipv6(a.router, a.vip).IcmpV6(kIcmpV6TimeExceeded, 0);
  }
  b.Embed(udp_bytes);
  add("icmp_time_exceeded_quoting_udp", b);

  // Tunnels the decap side sees.
  b = Eth();
  Ip(b, v4, a.tunnel_src, a.tunnel_dst);
  Ip(b, v4, a.client, a.vip).Tcp(40003, 80).Payload("inner");
  add(v4 ? "ipip" : "ip6ip6", b);

  b = Eth();
  Ip(b, v4, a.tunnel_src, a.tunnel_dst).Udp(51000, kGuePort).Gue();
  Ip(b, v4, a.client, a.vip).Tcp(40004, 80).Payload("gue");
  add("gue", b);
}

}  // namespace

std::vector<SampleFrame> ValidSampleFrames() {
  std::vector<SampleFrame> out;
  AddFamily(true, out);
  AddFamily(false, out);

  out.push_back({"ipv4_options_tcp",
                 Eth()
                     .Ipv4(kV4.client, kV4.vip)
                     .Ipv4Options({0x94, 0x04, 0x00, 0x00,  // Router Alert
                                   0x07, 0x07, 0x04, 0, 0, 0, 0})  // RR
                     .Tcp(40005, 80)
                     .Payload("opt")
                     .Build()});
  out.push_back(
      {"ipv6_tcp_hop_by_hop",
       Eth().Ipv6(kV6.client, kV6.vip).HopByHop().Tcp(40006, 80).Build()});
  out.push_back({"ipv6_tcp_routing", Eth()
                                         .Ipv6(kV6.client, kV6.vip)
                                         .Routing(4, 0, 24)
                                         .Tcp(40007, 80)
                                         .Build()});
  out.push_back({"ipv6_tcp_destination_options", Eth()
                                                     .Ipv6(kV6.client, kV6.vip)
                                                     .DestinationOptions(16)
                                                     .Tcp(40008, 80)
                                                     .Build()});
  out.push_back(
      {"ipv6_tcp_two_extension_headers", Eth()
                                             .Ipv6(kV6.client, kV6.vip)
                                             .HopByHop()
                                             .DestinationOptions()
                                             .Tcp(40009, 80)
                                             .Payload("ext")
                                             .Build()});
  out.push_back({"ipv6_icmp_error_quoting_extension_headers",
                 Eth()
                     .Ipv6(kV6.router, kV6.vip)
                     .IcmpV6(kIcmpV6DestUnreachable, 4)
                     .Embed(PacketBuilder()
                                .Ipv6(kV6.vip, kV6.client)
                                .DestinationOptions()
                                .Udp(53, 5353)
                                .Payload("a")
                                .Build())
                     .Build()});
  out.push_back(
      {"ipv4_gue_variant0_ipv6_inner", Eth()
                                           .Ipv4(kV4.tunnel_src, kV4.tunnel_dst)
                                           .Udp(51001, kGuePort)
                                           .GueVariant0()
                                           .Ipv6(kV6.client, kV6.vip)
                                           .Udp(5353, 53)
                                           .Payload("g0")
                                           .Build()});
  out.push_back(
      {"arp_request",
       Eth()
           .EtherType(0x0806)
           .Payload(std::string("\x00\x01\x08\x00\x06\x04\x00\x01"
                                "\x02\x00\x00\x00\x00\x01\xc0\x00\x02\x01"
                                "\x00\x00\x00\x00\x00\x00\xc6\x33\x64\x0a",
                                28))
           .PadTo(60)
           .Build()});
  return out;
}

std::vector<SampleFrame> MalformedSampleFrames() {
  std::vector<SampleFrame> out;
  auto add = [&](const std::string& name, const PacketBuilder& b) {
    out.push_back({name, b.Build()});
  };
  add("truncated_ethernet", Eth().Truncate(13));
  add("truncated_vlan", Eth().Vlan(1).Truncate(16));
  add("truncated_ipv4_header",
      Eth().Ipv4(kV4.client, kV4.vip).Tcp(1, 80).Truncate(14 + 19));
  add("bad_ip_version", Eth().Ipv4(kV4.client, kV4.vip).Version(6).Tcp(1, 80));
  add("bad_ipv4_header_length",
      Eth().Ipv4(kV4.client, kV4.vip).Ihl(4).Tcp(1, 80));
  add("bad_ipv4_total_length",
      Eth().Ipv4(kV4.client, kV4.vip).TotalLength(19).Tcp(1, 80));
  add("ipv4_total_length_beyond_frame",
      Eth().Ipv4(kV4.client, kV4.vip).TotalLength(1500).Tcp(1, 80));
  add("truncated_ipv6_header",
      Eth().Ipv6(kV6.client, kV6.vip).Tcp(1, 80).Truncate(14 + 39));
  add("ipv6_payload_length_beyond_frame",
      Eth().Ipv6(kV6.client, kV6.vip).PayloadLength(1000).Tcp(1, 80));
  add("truncated_ipv6_extension_header",
      Eth().Ipv6(kV6.client, kV6.vip).HopByHop().HdrExtLen(9).Tcp(1, 80));
  {
    PacketBuilder b = Eth();
    b.Ipv6(kV6.client, kV6.vip);
    for (int i = 0; i < 9; ++i) b.DestinationOptions();
    b.Tcp(1, 80);
    add("ipv6_extension_chain_too_long", b);
  }
  add("ipv6_misplaced_hop_by_hop", Eth()
                                       .Ipv6(kV6.client, kV6.vip)
                                       .DestinationOptions()
                                       .HopByHop()
                                       .Tcp(1, 80));
  add("truncated_tcp_header",
      Eth().Ipv4(kV4.client, kV4.vip).Protocol(6).Payload("short"));
  add("bad_tcp_data_offset",
      Eth().Ipv4(kV4.client, kV4.vip).Tcp(1, 80).DataOffset(4));
  add("tcp_data_offset_beyond_packet",
      Eth().Ipv6(kV6.client, kV6.vip).Tcp(1, 80).DataOffset(15));
  add("truncated_udp_header",
      Eth().Ipv4(kV4.client, kV4.vip).Protocol(17).Payload("seven!!"));
  add("bad_udp_length",
      Eth().Ipv4(kV4.client, kV4.vip).Udp(1, 53).UdpLength(200).Payload("x"));
  add("ipv6_udp_zero_checksum", Eth()
                                    .Ipv6(kV6.client, kV6.vip)
                                    .Udp(1, 53)
                                    .UdpChecksumZero()
                                    .Payload("x"));
  add("truncated_icmp_header",
      Eth().Ipv6(kV6.client, kV6.vip).Protocol(58).Payload("1234"));
  add("icmp_inner_ip_truncated", Eth()
                                     .Ipv4(kV4.router, kV4.vip)
                                     .IcmpV4(kIcmpTimeExceeded, 0)
                                     .Embed(PacketBuilder()
                                                .Ipv4(kV4.vip, kV4.client)
                                                .Tcp(80, 1)
                                                .Truncate(12)
                                                .Build()));
  add("icmp_inner_bad_ip",
      Eth()
          .Ipv4(kV4.router, kV4.vip)
          .IcmpV4(kIcmpTimeExceeded, 0)
          .Embed(PacketBuilder().Ipv6(kV6.vip, kV6.client).Tcp(80, 1).Build()));
  add("icmp_inner_l4_truncated", Eth()
                                     .Ipv6(kV6.router, kV6.vip)
                                     .IcmpV6(kIcmpV6TimeExceeded, 0)
                                     .Embed(PacketBuilder()
                                                .Ipv6(kV6.vip, kV6.client)
                                                .Tcp(80, 1)
                                                .Truncate(40 + 4)
                                                .Build()));
  return out;
}

}  // namespace anylb::dataplane_testing
