// engine_corpus_gen writes the NAT and FULLNAT seed frames of engine_fuzz
// (client packets to the FuzzSnapshot's NAT/FULLNAT services, backend
// replies, ICMP errors from either side, TTL 1, first and later fragments
// both ways), one file each, into
// --out_dir, and optionally all of them into a pcap file (--pcap_out).
//
//   bazel run //lbnode/dataplane:engine_corpus_gen --
//       --out_dir=$PWD/lbnode/dataplane/testdata/engine_corpus
//       [--pcap_out=FILE]          (one command)

#include <cstdio>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "lbnode/dataplane/engine_fuzz_snapshot.h"
#include "lbnode/dataplane/testing/packet_builder.h"
#include "lbnode/dataplane/testing/pcap_writer.h"

ABSL_FLAG(std::string, out_dir, "", "Directory to write one file per frame");
ABSL_FLAG(std::string, pcap_out, "", "If set, also write all frames here");

namespace {

namespace dt = ::anylb::dataplane_testing;
namespace fz = ::anylb::dataplane::fuzz;

constexpr char kRouterMac[] = "02:00:00:00:00:01";
constexpr char kNodeMac[] = "02:00:00:00:00:02";

dt::PacketBuilder Ip(dt::PacketBuilder b, bool v6, const std::string& src,
                     const std::string& dst, uint8_t ttl = 64) {
  if (v6) {
    b.Ipv6(src, dst).HopLimit(ttl);
  } else {
    b.Ipv4(src, dst).Ttl(ttl);
  }
  return b;
}

dt::PacketBuilder L4(dt::PacketBuilder b, uint8_t proto, uint16_t sport,
                     uint16_t dport, uint8_t flags) {
  if (proto == 6) {
    b.Tcp(sport, dport).Flags(flags);
  } else {
    b.Udp(sport, dport);
  }
  return b.Payload("seed");
}

std::vector<std::pair<std::string, std::vector<uint8_t>>> Frames() {
  std::vector<std::pair<std::string, std::vector<uint8_t>>> out;
  const dt::PacketBuilder from_router =
      dt::PacketBuilder().Eth(kRouterMac, kNodeMac);
  for (bool v6 : {false, true}) {
    const std::string vip = v6 ? fz::kVip6 : fz::kVip4;
    const std::string client = v6 ? fz::kClient6 : fz::kClient4;
    const std::string local = v6 ? fz::kLocal6 : fz::kLocal4;
    for (bool full : {false, true}) {
      const std::string backend =
          full ? (v6 ? fz::kFullNatBackend6 : fz::kFullNatBackend4)
               : (v6 ? fz::kNatBackend6 : fz::kNatBackend4);
      const uint16_t vport = full ? fz::kFullNatPort : fz::kNatPort;
      const std::string peer = full ? local : client;
      const uint16_t peer_port = full ? fz::kLocalPortMin : 40000;
      const std::string tag =
          std::string(full ? "fullnat_" : "nat_") + (v6 ? "v6_" : "v4_");
      for (uint8_t proto : {uint8_t{6}, uint8_t{17}}) {
        const std::string t = tag + (proto == 6 ? "tcp_" : "udp_");
        out.emplace_back(t + "client", L4(Ip(from_router, v6, client, vip),
                                          proto, 40000, vport, dt::kSyn)
                                           .Build());
        out.push_back(
            {t + "client_ttl_1", L4(Ip(from_router, v6, client, vip, 1), proto,
                                    40000, vport, dt::kSyn)
                                     .Build()});
        out.push_back(
            {t + "reply", L4(Ip(from_router, v6, backend, peer), proto,
                             fz::kBackendPort, peer_port, dt::kSyn | dt::kAck)
                              .Build()});
      }
      // Fragments: a client datagram's first and later fragment, and the
      // backend's (a reply) first fragment; each protocol.
      for (uint8_t proto : {uint8_t{6}, uint8_t{17}}) {
        const std::string t = tag + (proto == 6 ? "tcp_" : "udp_");
        const size_t data = proto == 6 ? 20 : 24;  // header + data: 40 / 32.
        const uint16_t units =
            static_cast<uint16_t>(((proto == 6 ? 20 : 8) + data) / 8);
        auto first = [&](const std::string& src, const std::string& dst,
                         uint16_t sport, uint16_t dport, uint32_t id) {
          dt::PacketBuilder b = Ip(from_router, v6, src, dst);
          if (v6) {
            b.Fragment(0, true, id);
          } else {
            b.Id(static_cast<uint16_t>(id)).MoreFragments();
          }
          if (proto == 6) {
            b.Tcp(sport, dport).Flags(dt::kAck);
          } else {
            b.Udp(sport, dport).UdpLength(static_cast<uint16_t>(8 + data + 10));
          }
          return b.Payload(std::string(data, 'a')).Build();
        };
        auto later = [&](const std::string& src, const std::string& dst,
                         uint32_t id) {
          dt::PacketBuilder b = Ip(from_router, v6, src, dst);
          if (v6) {
            b.Fragment(units, false, id).NextHeader(proto);
          } else {
            b.Id(static_cast<uint16_t>(id))
                .FragmentOffset(units)
                .Protocol(proto);
          }
          return b.Payload(std::string(10, 'b')).Build();
        };
        out.push_back(
            {t + "first_fragment", first(client, vip, 40000, vport, 77)});
        out.push_back({t + "later_fragment", later(client, vip, 77)});
        out.push_back({t + "reply_first_fragment",
                       first(backend, peer, fz::kBackendPort, peer_port, 78)});
      }
      // ICMP errors: from the client side, quoting VIP → client; from the
      // backend side, quoting peer → backend.
      const size_t quote = (v6 ? 40 : 20) + 8;
      auto error = [&](const std::string& src, const std::string& dst,
                       const std::string& qs, uint16_t qsp,
                       const std::string& qd, uint16_t qdp) {
        const std::vector<uint8_t> q =
            L4(Ip(dt::PacketBuilder(), v6, qs, qd), 6, qsp, qdp, dt::kAck)
                .Truncate(quote)
                .Build();
        dt::PacketBuilder b = Ip(from_router, v6, src, dst);
        if (v6) {
          b.IcmpV6(2, 0).IcmpRest(1400);
        } else {
          b.IcmpV4(3, 4).IcmpRest(1400);
        }
        return b.Embed(q).Build();
      };
      const std::string router = v6 ? "2001:db8:7::1" : "203.0.113.1";
      out.emplace_back(tag + "icmp_error_client_side",
                       error(router, vip, vip, vport, client, 40000));
      out.push_back(
          {tag + "icmp_error_backend_side",
           error(backend, peer, peer, peer_port, backend, fz::kBackendPort)});
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string out_dir = absl::GetFlag(FLAGS_out_dir);
  const std::string pcap_out = absl::GetFlag(FLAGS_pcap_out);
  if (out_dir.empty() && pcap_out.empty()) {
    std::fprintf(stderr,
                 "usage: engine_corpus_gen --out_dir=DIR [--pcap_out=FILE]\n");
    return 2;
  }
  const auto frames = Frames();
  if (!out_dir.empty()) {
    for (const auto& [name, frame] : frames) {
      std::string path = out_dir;
      path += "/";
      path += name;
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      out.write(reinterpret_cast<const char*>(frame.data()),
                static_cast<std::streamsize>(frame.size()));
      if (!out) {
        std::fprintf(stderr, "cannot write %s\n", path.c_str());
        return 1;
      }
    }
    std::printf("wrote %zu frames to %s\n", frames.size(), out_dir.c_str());
  }
  if (!pcap_out.empty()) {
    std::vector<std::vector<uint8_t>> all;
    all.reserve(frames.size());
    for (const auto& f : frames) all.push_back(f.second);
    const absl::Status status = dt::WritePcapFile(pcap_out, all);
    if (!status.ok()) {
      std::fprintf(stderr, "%s\n", status.ToString().c_str());
      return 1;
    }
  }
  return 0;
}
