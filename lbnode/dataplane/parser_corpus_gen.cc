// parser_corpus_gen writes every SampleFrames() fixture, valid and malformed,
// as one file each into --out_dir (the seed corpus of parser_fuzz_test), and
// optionally all of them into a pcap file (--pcap_out) for tcpdump or
// Wireshark.
//
//   bazel run //lbnode/dataplane:parser_corpus_gen -- --out_dir=DIR
//       [--pcap_out=FILE]
//
// with DIR = $PWD/lbnode/dataplane/testdata/parser_corpus to regenerate the
// committed corpus.

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "lbnode/dataplane/testing/pcap_writer.h"
#include "lbnode/dataplane/testing/sample_frames.h"

ABSL_FLAG(std::string, out_dir, "", "Directory to write one file per frame");
ABSL_FLAG(std::string, pcap_out, "", "If set, also write all frames here");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  namespace dt = ::anylb::dataplane_testing;
  std::vector<dt::SampleFrame> samples = dt::ValidSampleFrames();
  for (dt::SampleFrame& s : dt::MalformedSampleFrames()) {
    s.name = "drop_" + s.name;
    samples.push_back(std::move(s));
  }
  const std::string out_dir = absl::GetFlag(FLAGS_out_dir);
  const std::string pcap_out = absl::GetFlag(FLAGS_pcap_out);
  if (out_dir.empty() && pcap_out.empty()) {
    std::fprintf(stderr,
                 "usage: parser_corpus_gen --out_dir=DIR "
                 "[--pcap_out=FILE]\n");
    return 2;
  }
  if (!out_dir.empty()) {
    for (const dt::SampleFrame& s : samples) {
      const std::string path = out_dir + "/" + s.name;
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      out.write(reinterpret_cast<const char*>(s.frame.data()),
                static_cast<std::streamsize>(s.frame.size()));
      if (!out) {
        std::fprintf(stderr, "cannot write %s\n", path.c_str());
        return 1;
      }
    }
    std::printf("wrote %zu frames to %s\n", samples.size(), out_dir.c_str());
  }
  if (!pcap_out.empty()) {
    std::vector<std::vector<uint8_t>> frames;
    for (const dt::SampleFrame& s : samples) frames.push_back(s.frame);
    absl::Status status = dt::WritePcapFile(pcap_out, frames);
    if (!status.ok()) {
      std::fprintf(stderr, "%s\n", status.ToString().c_str());
      return 1;
    }
    std::printf("wrote %zu frames to %s\n", frames.size(), pcap_out.c_str());
  }
  return 0;
}
