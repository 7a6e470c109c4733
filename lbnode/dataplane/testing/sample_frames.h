// SampleFrames: a catalogue of well-formed frames of every shape the
// dataplane meets (both IP versions, VLAN, IPv4 options, IPv6 extension
// headers, fragments, ICMP errors, tunnels, padding, non-IP), built with
// PacketBuilder. Parser property tests truncate each at every length, the
// fuzz corpus is seeded from them, and benchmarks and pcap dumps use them.

#ifndef ANYLB_LBNODE_DATAPLANE_TESTING_SAMPLE_FRAMES_H_
#define ANYLB_LBNODE_DATAPLANE_TESTING_SAMPLE_FRAMES_H_

#include <cstdint>
#include <string>
#include <vector>

namespace anylb::dataplane_testing {

// SampleFrame is one named frame. Names are lowercase identifiers
// ("ipv6_tcp_hop_by_hop"), usable as file names.
struct SampleFrame {
  std::string name;
  std::vector<uint8_t> frame;
};

// ValidSampleFrames returns well-formed frames the parser accepts (and one
// ARP frame it passes to the kernel).
std::vector<SampleFrame> ValidSampleFrames();

// MalformedSampleFrames returns frames the parser must drop, one or more per
// drop reason it has.
std::vector<SampleFrame> MalformedSampleFrames();

}  // namespace anylb::dataplane_testing

#endif  // ANYLB_LBNODE_DATAPLANE_TESTING_SAMPLE_FRAMES_H_
