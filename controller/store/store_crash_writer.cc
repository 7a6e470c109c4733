// store_crash_writer: the process that sqlite_store_test kills with SIGKILL.
// It commits an endless stream of changes to the store at --path and prints
// "acked <revision>" after each Commit() returned OK — what an RPC would
// acknowledge to its caller. Every commit rewrites three services so that
// all three carry the new revision in their hash_seed: a half-applied
// commit would show as services disagreeing.

#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "controller/store/sqlite_store.h"

ABSL_FLAG(std::string, path, "", "the store's SQLite file");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  auto store =
      anylb::controller::SqliteStore::Open({.path = absl::GetFlag(FLAGS_path)});
  if (!store.ok()) {
    std::fprintf(stderr, "store_crash_writer: %s\n",
                 store.status().ToString().c_str());
    return 1;
  }
  std::printf("opened %llu\n",
              static_cast<unsigned long long>((*store)->Current()->revision));
  std::fflush(stdout);
  for (;;) {
    auto result = (*store)->Commit([](anylb::controller::StoreState& state) {
      const uint64_t next = state.revision + 1;
      for (const char* name : {"alpha", "bravo", "charlie"}) {
        lb::v1::Service& service = state.services[name];
        service.set_name(name);
        service.set_vip("192.0.2.10");
        service.set_port(80);
        service.set_hash_seed(next);
      }
      // A node row changes in the same transaction, so two tables must
      // agree too.
      state.nodes["lb1"].set_node_name("lb1");
      state.nodes["lb1"].set_weight(static_cast<uint32_t>(next % 1000 + 1));
      return absl::OkStatus();
    });
    if (!result.ok()) {
      std::fprintf(stderr, "store_crash_writer: %s\n",
                   result.status().ToString().c_str());
      return 1;
    }
    std::printf("acked %llu\n",
                static_cast<unsigned long long>(result->state->revision));
    std::fflush(stdout);
  }
}
