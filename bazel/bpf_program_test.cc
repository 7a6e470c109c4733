// lb_bpf_program turns BPF C into an object libbpf can open, on disk and
// embedded. Opening parses the ELF and BTF; it needs no privileges.

#include <bpf/libbpf.h>

#include <cstring>
#include <string>

#include "bazel/xdp_pass_fixture_embed.h"
#include "gtest/gtest.h"

namespace {

void ExpectOneXdpProgram(bpf_object* obj) {
  ASSERT_NE(obj, nullptr);
  int programs = 0;
  bpf_program* prog;
  bpf_object__for_each_program(prog, obj) {
    ++programs;
    EXPECT_STREQ(bpf_program__name(prog), "xdp_pass_fixture");
    EXPECT_EQ(bpf_program__type(prog), BPF_PROG_TYPE_XDP);
  }
  EXPECT_EQ(programs, 1);
  bpf_object__close(obj);
}

TEST(LbBpfProgram, ObjectFileOpensWithLibbpf) {
  bpf_object* obj = bpf_object__open_file("bazel/xdp_pass_fixture.o", nullptr);
  ASSERT_EQ(libbpf_get_error(obj), 0);
  ExpectOneXdpProgram(obj);
}

TEST(LbBpfProgram, EmbeddedObjectOpensFromMemory) {
  auto bytes = anylb::bpf::XdpPassFixtureObject();
  ASSERT_GT(bytes.size(), 4u);
  EXPECT_EQ(std::memcmp(bytes.data(), "\x7f" "ELF", 4), 0);
  bpf_object* obj = bpf_object__open_mem(bytes.data(), bytes.size(), nullptr);
  ASSERT_EQ(libbpf_get_error(obj), 0);
  ExpectOneXdpProgram(obj);
}

}  // namespace
