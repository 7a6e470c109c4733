// lbctl as users meet it: the lbctl binary against a running
// anylb_controller (a temp SQLite store, TLS certificates from
// deploy/make-certs.sh, a token file with an operator and a read-only
// token), each command a child process; results checked through -Ln / -S.

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "common/testing/child_process.h"
#include "controller/testing/controller_process.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lb/v1/controller.grpc.pb.h"

namespace anylb::lbctl {
namespace {

using ::anylb::process_testing::ChildProcess;
using ::testing::HasSubstr;
using ::testing::Not;

using controller_testing::ControllerProcess;
using controller_testing::Runfile;
using controller_testing::TestPki;

struct Result {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

class LbctlTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto pki = TestPki::Create({"lb1", "lb2"});
    ASSERT_TRUE(pki.ok()) << pki.status();
    dir_ = new std::string(pki->dir);
    pki_ = new TestPki(*pki);
  }

  void SetUp() override {
    controller_ = StartController();
    ASSERT_NE(controller_, nullptr);
  }

  std::unique_ptr<ControllerProcess> StartController() {
    auto started = ControllerProcess::Start(
        *pki_, absl::StrCat(*dir_, "/store-", ++stores_, ".db"),
        /*node_certificates=*/false);
    EXPECT_TRUE(started.ok()) << started.status();
    return started.ok() ? std::move(*started) : nullptr;
  }

  // Lbctl runs lbctl against `controller` (the test's by default) with the
  // operator token, `stdin_text` on its standard input.
  Result Lbctl(const std::vector<std::string>& args,
               const std::string& token_file = "op.token",
               const std::string& stdin_text = "",
               const ControllerProcess* controller = nullptr) {
    if (controller == nullptr) controller = controller_.get();
    std::string input = absl::StrCat(*dir_, "/stdin-", ++inputs_);
    std::ofstream(input) << stdin_text;
    std::vector<std::string> quoted;
    for (const std::string& arg : args) {
      quoted.push_back(absl::StrCat("'", arg, "'"));
    }
    std::string command =
        absl::StrCat("exec '", Runfile("controller/lbctl/lbctl"),
                     "' --controller=", controller->address(), " --ca=", *dir_,
                     "/ca.crt --token_file=", *dir_, "/", token_file, " ",
                     absl::StrJoin(quoted, " "), " < '", input, "'");
    auto child = ChildProcess::Start({"/bin/sh", "-c", command});
    Result result;
    if (!child.ok()) {
      ADD_FAILURE() << child.status();
      return result;
    }
    result.exit_code = (*child)->Wait(absl::Seconds(60));
    result.output = (*child)->output();
    return result;
  }

  // Ok runs lbctl and expects exit 0; returns its output.
  std::string Ok(const std::vector<std::string>& args,
                 const std::string& stdin_text = "",
                 const ControllerProcess* controller = nullptr) {
    Result result = Lbctl(args, "op.token", stdin_text, controller);
    EXPECT_EQ(result.exit_code, 0)
        << absl::StrJoin(args, " ") << ": " << result.output;
    return result.output;
  }

  static std::string* dir_;
  static inline TestPki* pki_ = nullptr;
  static int stores_;
  int inputs_ = 0;
  std::unique_ptr<ControllerProcess> controller_;
};

std::string* LbctlTest::dir_ = nullptr;
int LbctlTest::stores_ = 0;

TEST_F(LbctlTest, IpvsadmVerbsChangeWhatListShows) {
  EXPECT_EQ(Ok({"-Ln"}),
            "anylb controller revision 0 (services=0)\n"
            "Prot LocalAddress:Port Scheduler Flags\n"
            "  -> RemoteAddress:Port           Forward Weight ActiveConn "
            "InActConn\n");
  Ok({"-A", "-t", "192.0.2.10:80", "-s", "wlc", "-p", "300", "-M",
      "255.255.255.0"});
  Ok({"-a", "-t", "192.0.2.10:80", "-r", "198.51.100.2:80", "-g", "-w", "3"});
  Ok({"--add-server", "--tcp-service=192.0.2.10:80",
      "--real-server=198.51.100.3", "--gatewaying"});
  EXPECT_EQ(Ok({"-L", "-n"}),
            "anylb controller revision 3 (services=1)\n"
            "Prot LocalAddress:Port Scheduler Flags\n"
            "  -> RemoteAddress:Port           Forward Weight ActiveConn "
            "InActConn\n"
            "TCP  192.0.2.10:80 wlc persistent 300 mask 255.255.255.0\n"
            "  -> 198.51.100.2:80              Route   3      0          0   "
            "      \n"
            "  -> 198.51.100.3:80              Route   1      0          0   "
            "      \n");

  // -E: scheduler changes, persistence goes (left out, as in ipvsadm).
  Ok({"-E", "-t", "192.0.2.10:80", "-s", "mh", "-b", "mh-port"});
  // -e without a port: the VIP's port.
  Ok({"-e", "-t", "192.0.2.10:80", "-r", "198.51.100.2", "-w", "0"});
  Ok({"-d", "-t", "192.0.2.10:80", "-r", "198.51.100.3:80"});
  EXPECT_EQ(Ok({"-Ln", "-t", "192.0.2.10:80"}),
            "Prot LocalAddress:Port Scheduler Flags\n"
            "  -> RemoteAddress:Port           Forward Weight ActiveConn "
            "InActConn\n"
            "TCP  192.0.2.10:80 mh (mh-port)\n"
            "  -> 198.51.100.2:80              Route   0      0          0   "
            "      \n");

  Ok({"-D", "-t", "192.0.2.10:80"});
  EXPECT_THAT(Ok({"-Ln"}), HasSubstr("(services=0)"));
}

TEST_F(LbctlTest, RefusalsAreOneLineWithTheFix) {
  Result missing =
      Lbctl({"-a", "-t", "192.0.2.1:80", "-r", "198.51.100.2:80", "-g"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(missing.output,
            "lbctl: -a: service TCP 192.0.2.1:80 does not exist (add it with "
            "-A first)\n");

  Ok({"-A", "-u", "192.0.2.53:53", "-s", "sh"});
  Result twice = Lbctl({"-A", "-u", "192.0.2.53:53"});
  EXPECT_EQ(twice.exit_code, 1);
  EXPECT_EQ(twice.output,
            "lbctl: -A: service UDP 192.0.2.53:53 already exists (change it "
            "with -E)\n");

  Result no_server = Lbctl({"-d", "-u", "192.0.2.53:53", "-r", "198.51.100.9"});
  EXPECT_EQ(no_server.exit_code, 1);
  EXPECT_EQ(no_server.output,
            "lbctl: -d: real server 198.51.100.9:53 is not in UDP "
            "192.0.2.53:53\n");

  // The controller's own validation, passed on: DR cannot map ports.
  Ok({"-A", "-t", "192.0.2.1:80"});
  Result rejected =
      Lbctl({"-a", "-t", "192.0.2.1:80", "-r", "198.51.100.2:8080", "-g"});
  EXPECT_EQ(rejected.exit_code, 1);
  EXPECT_THAT(rejected.output,
              HasSubstr("lbctl: -a: the controller refused it: "));
  EXPECT_THAT(rejected.output, HasSubstr("DR cannot map ports"));
  EXPECT_EQ(std::count(rejected.output.begin(), rejected.output.end(), '\n'), 1)
      << rejected.output;
  Ok({"-a", "-t", "192.0.2.1:80", "-r", "198.51.100.2", "-g"});
  Result mixed =
      Lbctl({"-a", "-t", "192.0.2.1:80", "-r", "198.51.100.3", "-m"});
  EXPECT_EQ(mixed.exit_code, 1);
  EXPECT_THAT(mixed.output,
              HasSubstr("anylb keeps one forwarding method per service"));

  Result usage = Lbctl({"-A", "-t", "192.0.2.1:80", "-s", "fast"});
  EXPECT_EQ(usage.exit_code, 2);
  EXPECT_THAT(usage.output, HasSubstr("lbctl: -s: unknown scheduler \"fast\""));

  Result fwmark = Lbctl({"-A", "-f", "1"});
  EXPECT_EQ(fwmark.exit_code, 2);
  EXPECT_THAT(fwmark.output, HasSubstr("not supported"));
}

TEST_F(LbctlTest, ReadOnlyTokenListsButCannotChange) {
  Ok({"-A", "-t", "192.0.2.10:80"});
  Result list = Lbctl({"-Ln"}, "ro.token");
  EXPECT_EQ(list.exit_code, 0) << list.output;
  EXPECT_THAT(list.output, HasSubstr("TCP  192.0.2.10:80 mh"));

  Result add = Lbctl({"-A", "-t", "192.0.2.11:80"}, "ro.token");
  EXPECT_EQ(add.exit_code, 1);
  EXPECT_THAT(add.output, HasSubstr("lbctl: -A: permission denied"));
  EXPECT_THAT(add.output, HasSubstr("operator"));
  EXPECT_EQ(std::count(add.output.begin(), add.output.end(), '\n'), 1)
      << add.output;
  EXPECT_THAT(Ok({"-Ln"}), Not(HasSubstr("192.0.2.11")));
}

TEST_F(LbctlTest, WrongTokenAndUnreachableController) {
  std::ofstream(*dir_ + "/bad.token") << "not-a-token\n";
  Result bad = Lbctl({"-Ln"}, "bad.token");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.output, HasSubstr("lbctl: -L: "));
  EXPECT_THAT(bad.output, HasSubstr("token"));

  auto child = ChildProcess::Start(
      {Runfile("controller/lbctl/lbctl"), "--controller=127.0.0.1:1",
       "--ca=" + *dir_ + "/ca.crt", "--timeout=5s", "-Ln"});
  ASSERT_TRUE(child.ok());
  EXPECT_EQ((*child)->Wait(absl::Seconds(30)), 1);
  EXPECT_THAT((*child)->output(),
              HasSubstr("lbctl: -L: cannot reach the controller at "
                        "127.0.0.1:1"));
}

TEST_F(LbctlTest, SaveThenRestoreIntoAFreshControllerGivesTheSameSave) {
  Ok({"-A", "-t", "192.0.2.10:80", "-s", "wlc", "-p", "-M", "255.255.0.0"});
  Ok({"-a", "-t", "192.0.2.10:80", "-r", "198.51.100.2:80", "-g", "-w", "3",
      "-x", "100", "-y", "50"});
  // ipvsadm's habit for NAT: -A, then -a ... -m.
  Ok({"-A", "-t", "192.0.2.20:80", "-s", "rr"});
  Ok({"-a", "-t", "192.0.2.20:80", "-r", "198.51.100.3:8080", "-m", "-w", "2"});
  Ok({"-A", "-t", "[2001:db8::10]:443", "-s", "sh", "-b", "sh-fallback,sh-port",
      "-i", "--tun-type", "gue"});
  Ok({"-a", "-t", "[2001:db8::10]:443", "-r", "[2001:db8:1::2]:443", "-i",
      "--tun-type", "gue", "-w", "0"});
  Ok({"-A", "-u", "192.0.2.53:53", "-s", "rr"});
  Ok({"-a", "-u", "192.0.2.53:53", "-r", "198.51.100.20:53"});
  std::string saved = Ok({"-S", "-n"});
  EXPECT_EQ(saved,
            "-A -t 192.0.2.10:80 -s wlc -p 300 -M 255.255.0.0\n"
            "-a -t 192.0.2.10:80 -r 198.51.100.2:80 -g -w 3 -x 100 -y 50\n"
            "-A -t 192.0.2.20:80 -s rr -m\n"
            "-a -t 192.0.2.20:80 -r 198.51.100.3:8080 -m -w 2\n"
            "-A -t [2001:db8::10]:443 -s sh -b sh-fallback,sh-port -i "
            "--tun-type gue\n"
            "-a -t [2001:db8::10]:443 -r [2001:db8:1::2]:443 -i --tun-type "
            "gue -w 0\n"
            "-A -u 192.0.2.53:53 -s rr\n"
            "-a -u 192.0.2.53:53 -r 198.51.100.20:53 -g -w 1\n");

  std::unique_ptr<ControllerProcess> fresh = StartController();
  ASSERT_NE(fresh, nullptr);
  Ok({"-R"}, saved, fresh.get());
  EXPECT_EQ(Ok({"-S"}, "", fresh.get()), saved);
  // The same listing, but for the title line (the revisions differ).
  std::string fresh_list = Ok({"-Ln"}, "", fresh.get());
  std::string list = Ok({"-Ln"});
  EXPECT_EQ(fresh_list.substr(fresh_list.find('\n')),
            list.substr(list.find('\n')));

  // A bad line changes nothing, and says which line.
  Result bad = Lbctl({"-R"}, "op.token",
                     "-C\n-A -t 192.0.2.99:80\n-a -t 192.0.2.98:80 -r "
                     "198.51.100.2\n",
                     fresh.get());
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_EQ(bad.output,
            "lbctl: -R: stdin:3: -a: service TCP 192.0.2.98:80 does not exist "
            "(add it with -A first); nothing was changed\n");
  EXPECT_EQ(Ok({"-S"}, "", fresh.get()), saved);

  // -C empties it.
  Ok({"-C"}, "", fresh.get());
  EXPECT_EQ(Ok({"-S"}, "", fresh.get()), "");
}

TEST_F(LbctlTest, ApplyDryRunShowsTheDiffAndChangesNothing) {
  Ok({"-A", "-t", "192.0.2.20:80", "-s", "wlc"});
  const std::string yaml = absl::StrCat(*dir_, "/services-", getpid(), ".yaml");
  std::ofstream(yaml) << R"(services:
  - name: web
    vip: 192.0.2.10
    port: 80
    protocol: tcp
    scheduler: mh
    forwarding: {mode: dr}
    backends:
      - {address: 198.51.100.2, weight: 2}
)";
  std::string before = Ok({"-S"});
  std::string dry = Ok({"apply", "-f", yaml, "--dry-run"});
  EXPECT_THAT(dry, HasSubstr("+ web (create)"));
  EXPECT_THAT(dry, HasSubstr("- tcp-192.0.2.20-80 (delete)"));
  EXPECT_THAT(dry, HasSubstr("dry run: 2 changes, nothing stored"));
  EXPECT_EQ(Ok({"-S"}), before);

  std::string applied = Ok({"apply", "-f", yaml});
  EXPECT_THAT(applied, HasSubstr("applied 2 changes: revision"));
  EXPECT_EQ(Ok({"-S"}),
            "-A -t 192.0.2.10:80 -s mh\n"
            "-a -t 192.0.2.10:80 -r 198.51.100.2:80 -g -w 2\n");
  EXPECT_THAT(Ok({"apply", "-f", yaml}), HasSubstr("1 service unchanged"));

  std::ofstream(yaml) << "services:\n  - name: web\n    schedular: mh\n";
  Result typo = Lbctl({"apply", "-f", yaml});
  EXPECT_EQ(typo.exit_code, 2);
  EXPECT_THAT(typo.output, HasSubstr("schedular"));
}

TEST_F(LbctlTest, JsonAndFleetCommands) {
  Ok({"-A", "-t", "192.0.2.10:80"});
  std::string json = Ok({"-L", "-o", "json"});
  EXPECT_THAT(json, HasSubstr("\"vip\": \"192.0.2.10\""));
  EXPECT_THAT(json, HasSubstr("\"revision\": \"1\""));
  EXPECT_EQ(Ok({"status"}), "controller revision 1\nno nodes registered\n");
  EXPECT_THAT(Ok({"nodes"}), HasSubstr("NODE"));
  Result drain = Lbctl({"drain", "lb9"});
  EXPECT_EQ(drain.exit_code, 1);
  EXPECT_EQ(drain.output,
            "lbctl: drain: node \"lb9\" is not registered (lbctl nodes lists "
            "them)\n");
  Ok({"-Z"});
  EXPECT_THAT(Ok({"-Ln", "--stats", "--exact"}),
              HasSubstr("TCP  192.0.2.10:80                       0        0"));
}

TEST_F(LbctlTest, NodeWeightAndLocalAddressesReachTheNodesSettings) {
  auto controller = ControllerProcess::Start(
      *pki_, absl::StrCat(*dir_, "/store-", ++stores_, ".db"),
      /*node_certificates=*/true);
  ASSERT_TRUE(controller.ok()) << controller.status();
  const ControllerProcess* ctl = controller->get();
  auto stub = lb::v1::Controller::NewStub((*controller)->Channel("", "lb1"));
  grpc::ClientContext register_context;
  lb::v1::RegisterNodeRequest request;
  request.set_node_name("lb1");
  lb::v1::RegisterNodeResponse registered;
  grpc::Status status =
      stub->RegisterNode(&register_context, request, &registered);
  ASSERT_TRUE(status.ok()) << status.error_message();

  EXPECT_THAT(Ok({"node-weight", "lb1", "2"}, "", ctl),
              HasSubstr("node lb1: weight 2 (revision"));
  EXPECT_THAT(Ok({"node-local-addresses", "lb1", "192.0.2.64/28"}, "", ctl),
              HasSubstr("node lb1: local addresses 192.0.2.64/28"));
  const std::string json = Ok({"nodes", "-o", "json"}, "", ctl);
  EXPECT_THAT(json, HasSubstr("\"weight\": 2"));
  EXPECT_THAT(json, HasSubstr("\"192.0.2.64/28\""));
  // Setting one field keeps the other.
  EXPECT_THAT(Ok({"node-weight", "lb1", "3"}, "", ctl), HasSubstr("weight 3"));
  EXPECT_THAT(Ok({"nodes", "-o", "json"}, "", ctl),
              HasSubstr("\"192.0.2.64/28\""));
  EXPECT_THAT(Ok({"node-local-addresses", "lb1"}, "", ctl),
              HasSubstr("local addresses none"));

  Result bad = Lbctl({"node-weight", "lb1", "heavy"}, "op.token", "", ctl);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.output, HasSubstr("\"heavy\" is not a number"));
  Result unknown = Lbctl({"node-weight", "lb9", "2"}, "op.token", "", ctl);
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_THAT(unknown.output, HasSubstr("node \"lb9\" is not registered"));
  Result prefix = Lbctl({"node-local-addresses", "lb1", "192.0.2.999/28"},
                        "op.token", "", ctl);
  EXPECT_EQ(prefix.exit_code, 1);
  EXPECT_THAT(prefix.output, HasSubstr("192.0.2.999/28"));
}

// Two nodes (with their certificates) report a real server down: -Ln
// shows the fleet's verdict, since when and the node's error; -o json the
// nodes' views.
TEST_F(LbctlTest, ListShowsTheFleetsHealth) {
  auto controller = ControllerProcess::Start(
      *pki_, absl::StrCat(*dir_, "/store-", ++stores_, ".db"),
      /*node_certificates=*/true);
  ASSERT_TRUE(controller.ok()) << controller.status();
  const ControllerProcess* ctl = controller->get();
  Ok({"-A", "-t", "192.0.2.10:80", "-s", "mh"}, "", ctl);
  Ok({"-a", "-t", "192.0.2.10:80", "-r", "198.51.100.2:80", "-g"}, "", ctl);
  Ok({"-a", "-t", "192.0.2.10:80", "-r", "198.51.100.3:80", "-g"}, "", ctl);
  // Nothing reported yet: ipvsadm's layout, no Health column.
  EXPECT_THAT(Ok({"-Ln"}, "", ctl), Not(HasSubstr("Health")));
  for (const char* node : {"lb1", "lb2"}) {
    auto stub = lb::v1::Controller::NewStub((*controller)->Channel("", node));
    grpc::ClientContext register_context;
    lb::v1::RegisterNodeRequest request;
    request.set_node_name(node);
    lb::v1::RegisterNodeResponse registered;
    grpc::Status status =
        stub->RegisterNode(&register_context, request, &registered);
    ASSERT_TRUE(status.ok()) << status.error_message();
    lb::v1::ReportStatusRequest report;
    report.mutable_status()->set_node_name(node);
    for (const char* address : {"198.51.100.2", "198.51.100.3"}) {
      lb::v1::HealthReport* r = report.mutable_status()->add_health_reports();
      r->mutable_backend()->set_service_name("tcp-192.0.2.10-80");
      r->mutable_backend()->set_address(address);
      r->mutable_backend()->set_port(80);
      const bool down = std::string(address) == "198.51.100.2";
      r->set_state(down ? lb::v1::HEALTH_STATE_DOWN : lb::v1::HEALTH_STATE_UP);
      if (down) {
        r->set_last_error(absl::StrCat(
            "connect 198.51.100.2:80: Connection refused (", node, ")"));
      }
    }
    grpc::ClientContext report_context;
    lb::v1::ReportStatusResponse reported;
    status = stub->ReportStatus(&report_context, report, &reported);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  const std::string list = Ok({"-Ln"}, "", ctl);
  EXPECT_THAT(list, HasSubstr("ActiveConn InActConn Health\n"));
  EXPECT_THAT(list, HasSubstr("  -> 198.51.100.2:80              Route   1  "
                              "    0          0         down since "));
  EXPECT_THAT(list, HasSubstr("ago): connect 198.51.100.2:80: Connection "
                              "refused (lb"));
  EXPECT_THAT(list, HasSubstr("  -> 198.51.100.3:80              Route   1  "
                              "    0          0         up\n"));
  EXPECT_THAT(Ok({"-Ln", "--stats"}, "", ctl),
              HasSubstr("        0        0 down since "));
  const std::string json = Ok({"-L", "-o", "json"}, "", ctl);
  EXPECT_THAT(json, HasSubstr("\"health\": {"));
  EXPECT_THAT(json, HasSubstr("\"node_name\": \"lb2\""));
  EXPECT_THAT(json, HasSubstr("\"HEALTH_STATE_DOWN\""));
  // The read-only role may see it too.
  Result read_only = Lbctl({"-Ln"}, "ro.token", "", ctl);
  EXPECT_EQ(read_only.exit_code, 0) << read_only.output;
  EXPECT_THAT(read_only.output, HasSubstr("down since"));
}

}  // namespace
}  // namespace anylb::lbctl
