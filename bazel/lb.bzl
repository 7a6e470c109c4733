"""anylb's project macros. Every target in the tree goes through one of these.

  lb_cc_library / lb_cc_binary / lb_cc_test   C++ with the project's warnings
  lb_cc_benchmark                             Google Benchmark binary (testonly,
                                              tagged "benchmark"; run with
                                              `bazel run -c opt`)
  lb_cc_fuzz_test                             libFuzzer target + corpus test
  lb_proto_library                            protoc (+ grpc_cpp_plugin) -> cc_library
  lb_bpf_program                              clang -target bpf -> .o (+ embeddable lib)

Third-party code comes from Debian through @system (third_party/system.BUILD).
"""

# Warnings are errors for our own code only; generated protobuf code and
# system headers are compiled without -Werror.
LB_COPTS = [
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wno-missing-field-initializers",
]

_GTEST_MAIN = "@system//:gtest_main"
_GTEST = "@system//:gtest"

def lb_cc_library(name, copts = [], **kwargs):
    native.cc_library(name = name, copts = LB_COPTS + copts, **kwargs)

def lb_cc_binary(name, copts = [], **kwargs):
    native.cc_binary(name = name, copts = LB_COPTS + copts, **kwargs)

def lb_cc_test(name, deps = [], copts = [], gtest_main = True, size = "small", **kwargs):
    """A GoogleTest test. gtest_main=False when the test brings its own main().

    Tests that need root, network namespaces or XDP must be tagged
    ["local", "netns"] (deploy/test.sh runs them; --config=asan skips them).
    """
    native.cc_test(
        name = name,
        copts = LB_COPTS + copts,
        deps = deps + [_GTEST_MAIN if gtest_main else _GTEST],
        size = size,
        **kwargs
    )

def lb_cc_benchmark(name, deps = [], copts = [], tags = [], **kwargs):
    """A Google Benchmark binary. Built by `bazel build //...` so it cannot rot;
    run it with `bazel run -c opt //pkg:name`. Never part of `bazel test`."""
    native.cc_binary(
        name = name,
        testonly = True,
        copts = LB_COPTS + copts,
        deps = deps + ["@system//:benchmark_main"],
        tags = tags + ["benchmark"],
        **kwargs
    )

def lb_cc_fuzz_test(name, srcs, corpus, deps = [], copts = [], tags = [], **kwargs):
    """A libFuzzer target: srcs define LLVMFuzzerTestOneInput.

    Makes two targets:
      name          a cc_test that runs every file of `corpus` through the
                    target once (any compiler; part of `bazel test //...`).
      name_fuzzer   the fuzzer itself. Under --config=fuzz (clang, ASan,
                    UBSan) it links libFuzzer's main:
                      bazel run --config=fuzz //pkg:name_fuzzer -- \\
                          -max_total_time=300 $PWD/pkg/corpus_dir
                    Under gcc it is the same corpus runner as `name`.
    """
    lib = name + "_lib"
    native.cc_library(
        name = lib,
        testonly = True,
        srcs = srcs,
        copts = LB_COPTS + copts,
        deps = deps,
        alwayslink = True,
    )
    native.cc_test(
        name = name,
        deps = [lib, "//bazel:fuzz_corpus_main"],
        data = corpus,
        args = ["$(locations %s)" % c for c in corpus],
        size = "small",
        tags = tags + ["fuzz"],
        **kwargs
    )
    native.cc_binary(
        name = name + "_fuzzer",
        testonly = True,
        deps = [lib] + select({
            "//bazel:fuzzing": [],
            "//conditions:default": ["//bazel:fuzz_corpus_main"],
        }),
        linkopts = select({
            "//bazel:fuzzing": ["-fsanitize=fuzzer"],
            "//conditions:default": [],
        }),
        tags = tags + ["fuzz", "manual"],
    )

def _proto_base(src):
    if not src.endswith(".proto"):
        fail("lb_proto_library: %s is not a .proto file" % src)
    return src[:-len(".proto")]

def lb_proto_library(name, srcs, deps = [], grpc = False, proto_root = "proto", visibility = None):
    """C++ (and with grpc=True, gRPC) code generated from .proto files.

    Imports are relative to `proto_root` (`import "lb/v1/service.proto";`) and
    so are C++ includes (`#include "lb/v1/service.pb.h"`). `deps` are other
    lb_proto_library targets whose .proto files these import.
    """
    pkg = native.package_name()
    if pkg != proto_root and not pkg.startswith(proto_root + "/"):
        fail("lb_proto_library: package %s is not under %s/" % (pkg, proto_root))

    native.filegroup(
        name = name + "_protos",
        srcs = srcs + [d + "_protos" for d in deps],
        visibility = visibility,
    )

    bases = [_proto_base(s) for s in srcs]
    hdrs = [b + ".pb.h" for b in bases]
    cc_srcs = [b + ".pb.cc" for b in bases]
    if grpc:
        hdrs += [b + ".grpc.pb.h" for b in bases]
        cc_srcs += [b + ".grpc.pb.cc" for b in bases]

    grpc_flags = ""
    if grpc:
        grpc_flags = ("--plugin=protoc-gen-grpc=/usr/bin/grpc_cpp_plugin " +
                      "--grpc_out=$(GENDIR)/%s " % proto_root)
    native.genrule(
        name = name + "_gen",
        srcs = [name + "_protos"],
        outs = hdrs + cc_srcs,
        cmd = ("/usr/bin/protoc -I%s -I/usr/include --cpp_out=$(GENDIR)/%s %s%s" %
               (proto_root, proto_root, grpc_flags, " ".join([pkg + "/" + s for s in srcs]))),
        message = "protoc %s" % name,
    )

    native.cc_library(
        name = name,
        srcs = cc_srcs,
        hdrs = hdrs,
        strip_include_prefix = "/" + proto_root,
        deps = deps + ["@system//:protobuf"] + (["@system//:grpc"] if grpc else []),
        visibility = visibility,
    )

def _camel(name):
    return "".join([p[:1].upper() + p[1:] for p in name.replace("-", "_").split("_") if p])

def lb_bpf_program(name, src, hdrs = [], copts = [], visibility = None):
    """Compiles one BPF C file with clang into `name.o`.

    Also makes `name_embed`, a cc_library whose header
    `<package>/name_embed.h` declares
      std::span<const unsigned char> anylb::bpf::<Name>Object();
    returning the object's bytes, so a binary can load it with
    bpf_object__open_mem() and needs no file at run time.
    """
    obj = name + ".o"
    native.genrule(
        name = name,
        srcs = [src] + hdrs,
        outs = [obj],
        cmd = ("clang -O2 -g -target bpf -Wall -Werror " +
               "-I/usr/include/$$(gcc -print-multiarch) -I$$(dirname $(location %s)) %s " % (src, " ".join(copts)) +
               "-c $(location %s) -o $@" % src),
        message = "clang -target bpf %s" % name,
        visibility = visibility,
    )

    fn = _camel(name) + "Object"
    pkg = native.package_name()
    native.genrule(
        name = name + "_embed_gen",
        srcs = [obj],
        outs = [name + "_embed.h", name + "_embed.cc"],
        cmd = """
h=$(location {name}_embed.h); c=$(location {name}_embed.cc)
cat > $$h <<'HDR'
// Generated by lb_bpf_program from {src}. Do not edit.
#pragma once
#include <span>
namespace anylb::bpf {{
// {fn} returns the bytes of the BPF object file {name}.o.
std::span<const unsigned char> {fn}();
}}  // namespace anylb::bpf
HDR
{{
  echo '// Generated by lb_bpf_program from {src}. Do not edit.'
  echo '#include "{pkg}/{name}_embed.h"'
  echo 'namespace anylb::bpf {{'
  echo 'namespace {{'
  echo 'alignas(8) const unsigned char kBytes[] = {{'
  od -An -v -tx1 $(location {obj}) | sed -e 's/ \\([0-9a-f][0-9a-f]\\)/0x\\1,/g'
  echo '}};'
  echo '}}  // namespace'
  echo 'std::span<const unsigned char> {fn}() {{ return {{kBytes, sizeof(kBytes)}}; }}'
  echo '}}  // namespace anylb::bpf'
}} > $$c
""".format(name = name, src = src, fn = fn, obj = obj, pkg = pkg),
        message = "embedding %s" % obj,
    )
    native.cc_library(
        name = name + "_embed",
        srcs = [name + "_embed.cc"],
        hdrs = [name + "_embed.h"],
        visibility = visibility,
    )
