#include "controller/lbctl/parse_args.h"

#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace anylb::lbctl {
namespace {

using ::anylb::status_testing::IsOk;
using ::anylb::status_testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<std::string> Args(const std::string& line) {
  return absl::StrSplit(line, ' ', absl::SkipEmpty());
}

absl::StatusOr<Invocation> Parse(const std::string& line,
                                 const Environment& env = {}) {
  return ParseCommandLine(Args(line), env);
}

template <typename M>
M FromText(const std::string& text) {
  M message;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &message))
      << text;
  return message;
}

MATCHER_P(EqualsProto, text, "") {
  using M = std::decay_t<decltype(arg)>;
  M expected = FromText<M>(text);
  std::string diff;
  google::protobuf::util::MessageDifferencer differencer;
  differencer.ReportDifferencesToString(&diff);
  if (differencer.Compare(expected, arg)) return true;
  *result_listener << diff;
  return false;
}

// --- Services (-A, -E, -D) ---

struct ServiceCase {
  std::string line;
  Verb verb;
  std::string service;  // text format of the expected lb.v1.Service
};

class ServiceCommands : public ::testing::TestWithParam<ServiceCase> {};

TEST_P(ServiceCommands, BuildTheService) {
  ASSERT_OK_AND_ASSIGN(Invocation invocation, Parse(GetParam().line));
  EXPECT_EQ(invocation.command.verb, GetParam().verb);
  EXPECT_THAT(invocation.command.service, EqualsProto(GetParam().service));
}

INSTANTIATE_TEST_SUITE_P(
    Table, ServiceCommands,
    ::testing::Values(
        // Defaults: mh, direct routing.
        ServiceCase{"-A -t 192.0.2.1:80", Verb::kAddService,
                    "vip: '192.0.2.1' port: 80 protocol: PROTOCOL_TCP "
                    "scheduler: SCHEDULER_MH forwarding { mode: "
                    "FORWARDING_MODE_DR }"},
        ServiceCase{"-A -u 192.0.2.1:53 -s wrr", Verb::kAddService,
                    "vip: '192.0.2.1' port: 53 protocol: PROTOCOL_UDP "
                    "scheduler: SCHEDULER_WRR forwarding { mode: "
                    "FORWARDING_MODE_DR }"},
        ServiceCase{"--add-service --tcp-service=192.0.2.1:443 "
                    "--scheduler sh --sched-flags sh-fallback,sh-port",
                    Verb::kAddService,
                    "vip: '192.0.2.1' port: 443 protocol: PROTOCOL_TCP "
                    "scheduler: SCHEDULER_SH scheduler_flags { fallback: true "
                    "port: true } forwarding { mode: FORWARDING_MODE_DR }"},
        // -p without a value is 300 s; -M as a dotted mask.
        ServiceCase{"-A -t 192.0.2.1:80 -s wlc -p -M 255.255.255.0",
                    Verb::kAddService,
                    "vip: '192.0.2.1' port: 80 protocol: PROTOCOL_TCP "
                    "scheduler: SCHEDULER_WLC persistence { timeout { "
                    "seconds: 300 } ipv4_prefix_length: 24 } forwarding { "
                    "mode: FORWARDING_MODE_DR }"},
        ServiceCase{"-A -t 192.0.2.1:0 -s rr -p 600", Verb::kAddService,
                    "vip: '192.0.2.1' port: 0 protocol: PROTOCOL_TCP "
                    "scheduler: SCHEDULER_RR persistence { timeout { seconds: "
                    "600 } } forwarding { mode: FORWARDING_MODE_DR }"},
        ServiceCase{"-A -t 192.0.2.1 -p600", Verb::kAddService,
                    "vip: '192.0.2.1' port: 0 protocol: PROTOCOL_TCP "
                    "scheduler: SCHEDULER_MH persistence { timeout { seconds: "
                    "600 } } forwarding { mode: FORWARDING_MODE_DR }"},
        // IPv6, canonical text, prefix length netmask.
        ServiceCase{"-A -t [2001:DB8::0:1]:80 -s mh -b mh-port -p 60 -M 64",
                    Verb::kAddService,
                    "vip: '2001:db8::1' port: 80 protocol: PROTOCOL_TCP "
                    "scheduler: SCHEDULER_MH scheduler_flags { port: true } "
                    "persistence { timeout { seconds: 60 } "
                    "ipv6_prefix_length: 64 } forwarding { mode: "
                    "FORWARDING_MODE_DR }"},
        // Our forwarding additions on the service.
        ServiceCase{"-A -t 192.0.2.1:80 --fullnat", Verb::kAddService,
                    "vip: '192.0.2.1' port: 80 protocol: PROTOCOL_TCP "
                    "scheduler: SCHEDULER_MH forwarding { mode: "
                    "FORWARDING_MODE_FULLNAT }"},
        ServiceCase{"-A -t 192.0.2.1:80 -i --tun-type gue --gue-port 7000",
                    Verb::kAddService,
                    "vip: '192.0.2.1' port: 80 protocol: PROTOCOL_TCP "
                    "scheduler: SCHEDULER_MH forwarding { mode: "
                    "FORWARDING_MODE_TUN tunnel_type: TUNNEL_TYPE_GUE "
                    "gue_port: 7000 }"},
        ServiceCase{"-A -t 192.0.2.1:80 -m", Verb::kAddService,
                    "vip: '192.0.2.1' port: 80 protocol: PROTOCOL_TCP "
                    "scheduler: SCHEDULER_MH forwarding { mode: "
                    "FORWARDING_MODE_NAT }"},
        // -E without forwarding leaves it out of the message.
        ServiceCase{"-E -t 192.0.2.1:80 -s lc", Verb::kEditService,
                    "vip: '192.0.2.1' port: 80 protocol: PROTOCOL_TCP "
                    "scheduler: SCHEDULER_LC"},
        ServiceCase{"-D -t 192.0.2.1:80", Verb::kDeleteService, ""}));

TEST(ParseCommandLine, EveryIpvsSchedulerName) {
  for (const std::string name :
       {"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq",
        "fo", "ovf", "mh", "twos"}) {
    ASSERT_OK_AND_ASSIGN(Invocation invocation,
                         Parse("-A -t 192.0.2.1:80 -s " + name));
    EXPECT_NE(invocation.command.service.scheduler(),
              lb::v1::SCHEDULER_UNSPECIFIED)
        << name;
  }
}

TEST(ParseCommandLine, EditServiceSetsWhatIpvsadmSets) {
  ASSERT_OK_AND_ASSIGN(Invocation plain, Parse("-E -t 192.0.2.1:80 -s rr"));
  EXPECT_THAT(plain.command.service_fields,
              ElementsAre("scheduler", "scheduler_flags", "persistence"));
  ASSERT_OK_AND_ASSIGN(Invocation with_mode,
                       Parse("-E -t 192.0.2.1:80 -s rr -m"));
  EXPECT_THAT(
      with_mode.command.service_fields,
      ElementsAre("scheduler", "scheduler_flags", "persistence", "forwarding"));
}

TEST(ParseCommandLine, VirtualAddressIsTheSelector) {
  ASSERT_OK_AND_ASSIGN(Invocation invocation, Parse("-D -u [2001:db8::10]:53"));
  ASSERT_TRUE(invocation.command.virtual_address.has_value());
  EXPECT_THAT(*invocation.command.virtual_address,
              EqualsProto("vip: '2001:db8::10' port: 53 protocol: "
                          "PROTOCOL_UDP"));
}

// --- Real servers (-a, -e, -d) ---

struct ServerCase {
  std::string line;
  Verb verb;
  std::string backend;
  bool forwarding_given;
};

class ServerCommands : public ::testing::TestWithParam<ServerCase> {};

TEST_P(ServerCommands, BuildTheBackend) {
  ASSERT_OK_AND_ASSIGN(Invocation invocation, Parse(GetParam().line));
  EXPECT_EQ(invocation.command.verb, GetParam().verb);
  EXPECT_THAT(invocation.command.backend, EqualsProto(GetParam().backend));
  EXPECT_EQ(invocation.command.backend_forwarding_given,
            GetParam().forwarding_given);
}

INSTANTIATE_TEST_SUITE_P(
    Table, ServerCommands,
    ::testing::Values(
        // No -w: unset (the API's 1); no -g/-i/-m: the service's.
        ServerCase{"-a -t 192.0.2.1:80 -r 198.51.100.2", Verb::kAddServer,
                   "address: '198.51.100.2'", false},
        ServerCase{"-a -t 192.0.2.1:80 -r 198.51.100.2:8080 -m -w 3",
                   Verb::kAddServer,
                   "address: '198.51.100.2' port: 8080 weight: 3 "
                   "forwarding { mode: FORWARDING_MODE_NAT }",
                   true},
        ServerCase{"-a -t 192.0.2.1:80 -r 198.51.100.2:80 -g -w 0",
                   Verb::kAddServer,
                   "address: '198.51.100.2' port: 80 weight: 0 "
                   "forwarding { mode: FORWARDING_MODE_DR }",
                   true},
        ServerCase{"--add-server -t 192.0.2.1:80 --real-server "
                   "198.51.100.2:80 --ipip --weight=2 -x 100 -y 50",
                   Verb::kAddServer,
                   "address: '198.51.100.2' port: 80 weight: 2 "
                   "forwarding { mode: FORWARDING_MODE_TUN } "
                   "upper_threshold: 100 lower_threshold: 50",
                   true},
        ServerCase{"-a -t [2001:db8::1]:80 -r [2001:db8:1::2]:80 -i "
                   "--tun-type ipip",
                   Verb::kAddServer,
                   "address: '2001:db8:1::2' port: 80 forwarding { mode: "
                   "FORWARDING_MODE_TUN tunnel_type: TUNNEL_TYPE_IPIP }",
                   true},
        ServerCase{"-a -t [2001:db8::1]:80 -r 2001:db8:1::2 --fullnat",
                   Verb::kAddServer,
                   "address: '2001:db8:1::2' forwarding { mode: "
                   "FORWARDING_MODE_FULLNAT }",
                   true},
        // -e: weight 1 unless given, as ipvsadm.
        ServerCase{"-e -t 192.0.2.1:80 -r 198.51.100.2:80", Verb::kEditServer,
                   "address: '198.51.100.2' port: 80 weight: 1", false},
        ServerCase{"-e -t 192.0.2.1:80 -r 198.51.100.2:80 -w5",
                   Verb::kEditServer,
                   "address: '198.51.100.2' port: 80 weight: 5", false},
        ServerCase{"-d -t 192.0.2.1:80 -r 198.51.100.2:80", Verb::kDeleteServer,
                   "address: '198.51.100.2' port: 80", false}));

TEST(ParseCommandLine, EditServerSetsWhatIpvsadmSets) {
  ASSERT_OK_AND_ASSIGN(Invocation invocation,
                       Parse("-e -t 192.0.2.1:80 -r 198.51.100.2 -w 2"));
  EXPECT_THAT(invocation.command.backend_fields,
              ElementsAre("weight", "forwarding", "upper_threshold",
                          "lower_threshold"));
}

// --- Listing and the rest ---

TEST(ParseCommandLine, ListSpellings) {
  for (const std::string line :
       {"-L", "-l", "--list", "-Ln", "-nL", "-L -n", "", "-n"}) {
    ASSERT_OK_AND_ASSIGN(Invocation invocation, Parse(line));
    EXPECT_EQ(invocation.command.verb, Verb::kList) << line;
    EXPECT_EQ(invocation.command.list.columns, ListColumns::kDefault);
  }
  ASSERT_OK_AND_ASSIGN(Invocation numeric, Parse("-Ln"));
  EXPECT_TRUE(numeric.command.list.numeric);
}

TEST(ParseCommandLine, ListColumnsAndSelection) {
  ASSERT_OK_AND_ASSIGN(Invocation stats,
                       Parse("-L -n --stats --exact -t 192.0.2.1:80"));
  EXPECT_EQ(stats.command.list.columns, ListColumns::kStats);
  EXPECT_TRUE(stats.command.list.exact);
  ASSERT_TRUE(stats.command.virtual_address.has_value());
  EXPECT_EQ(stats.command.virtual_address->port(), 80u);

  ASSERT_OK_AND_ASSIGN(Invocation rate, Parse("-Ln --rate --rate-interval=2s"));
  EXPECT_EQ(rate.command.list.columns, ListColumns::kRate);
  EXPECT_EQ(rate.command.list.rate_interval, absl::Seconds(2));

  ASSERT_OK_AND_ASSIGN(Invocation thresholds, Parse("-L --thresholds"));
  EXPECT_EQ(thresholds.command.list.columns, ListColumns::kThresholds);
}

TEST(ParseCommandLine, SimpleVerbs) {
  struct {
    std::string line;
    Verb verb;
  } cases[] = {
      {"-Z", Verb::kZero},           {"--zero -t 192.0.2.1:80", Verb::kZero},
      {"-C", Verb::kClear},          {"--clear", Verb::kClear},
      {"-S", Verb::kSave},           {"-S -n", Verb::kSave},
      {"--save", Verb::kSave},       {"-R", Verb::kRestore},
      {"--restore", Verb::kRestore}, {"-h", Verb::kHelp},
      {"--help", Verb::kHelp},       {"help", Verb::kHelp},
      {"-v", Verb::kVersion},        {"version", Verb::kVersion},
      {"nodes", Verb::kNodes},       {"status", Verb::kStatus},
  };
  for (const auto& c : cases) {
    ASSERT_OK_AND_ASSIGN(Invocation invocation, Parse(c.line));
    EXPECT_EQ(invocation.command.verb, c.verb) << c.line;
  }
}

TEST(ParseCommandLine, Subcommands) {
  ASSERT_OK_AND_ASSIGN(Invocation apply,
                       Parse("apply -f services.yaml --dry-run"));
  EXPECT_EQ(apply.command.verb, Verb::kApply);
  EXPECT_EQ(apply.command.file, "services.yaml");
  EXPECT_TRUE(apply.command.dry_run);

  ASSERT_OK_AND_ASSIGN(Invocation drain, Parse("drain lb7"));
  EXPECT_EQ(drain.command.verb, Verb::kDrain);
  EXPECT_EQ(drain.command.node_name, "lb7");

  ASSERT_OK_AND_ASSIGN(Invocation undrain,
                       Parse("--controller 192.0.2.9:50051 undrain lb7"));
  EXPECT_EQ(undrain.command.verb, Verb::kUndrain);
  EXPECT_EQ(undrain.connection.controller, "192.0.2.9:50051");
}

TEST(ParseCommandLine, ConnectionFlagsOverrideTheEnvironment) {
  Environment env = {{"LBCTL_CONTROLLER", "192.0.2.5:1"},
                     {"LBCTL_CA", "/env/ca.crt"},
                     {"LBCTL_TOKEN_FILE", "/env/token"}};
  ASSERT_OK_AND_ASSIGN(Invocation from_env, Parse("-Ln", env));
  EXPECT_EQ(from_env.connection.controller, "192.0.2.5:1");
  EXPECT_EQ(from_env.connection.ca_file, "/env/ca.crt");
  EXPECT_EQ(from_env.connection.token_file, "/env/token");
  EXPECT_EQ(from_env.connection.timeout, absl::Seconds(10));
  EXPECT_FALSE(from_env.connection.insecure);

  ASSERT_OK_AND_ASSIGN(
      Invocation flags,
      Parse("-Ln --controller=[::1]:7 --ca=/c --token_file=/t --insecure "
            "--timeout=3s -o json",
            env));
  EXPECT_EQ(flags.connection.controller, "[::1]:7");
  EXPECT_EQ(flags.connection.ca_file, "/c");
  EXPECT_EQ(flags.connection.token_file, "/t");
  EXPECT_TRUE(flags.connection.insecure);
  EXPECT_EQ(flags.connection.timeout, absl::Seconds(3));
  EXPECT_EQ(flags.output, OutputFormat::kJson);

  ASSERT_OK_AND_ASSIGN(Invocation defaults, Parse("-Ln"));
  EXPECT_EQ(defaults.connection.controller, "127.0.0.1:50051");
  EXPECT_EQ(defaults.output, OutputFormat::kTable);
}

TEST(ParseCommandLine, SpellingVariants) {
  // --token-file and --token_file; "--" ends the options.
  ASSERT_OK_AND_ASSIGN(Invocation hyphen, Parse("-L --token-file /t"));
  EXPECT_EQ(hyphen.connection.token_file, "/t");
  // -p followed by an option takes the default; bundled -p600 a value.
  ASSERT_OK_AND_ASSIGN(Invocation bare, Parse("-A -t 192.0.2.1:80 -p -s rr"));
  EXPECT_EQ(bare.command.service.persistence().timeout().seconds(), 300);
  EXPECT_EQ(bare.command.service.scheduler(), lb::v1::SCHEDULER_RR);
  ASSERT_OK_AND_ASSIGN(Invocation eq,
                       Parse("-A -t 192.0.2.1:80 --persistent=45"));
  EXPECT_EQ(eq.command.service.persistence().timeout().seconds(), 45);
  // An IPv6 VIP without a port, bracketed.
  ASSERT_OK_AND_ASSIGN(Invocation v6, Parse("-A -t [2001:db8::1] -p"));
  EXPECT_EQ(v6.command.service.port(), 0u);
  EXPECT_EQ(v6.command.service.vip(), "2001:db8::1");
  // Globals before a subcommand, with their values as separate words.
  ASSERT_OK_AND_ASSIGN(Invocation nodes, Parse("-o json --timeout 2s nodes"));
  EXPECT_EQ(nodes.command.verb, Verb::kNodes);
  EXPECT_EQ(nodes.output, OutputFormat::kJson);
  EXPECT_EQ(nodes.connection.timeout, absl::Seconds(2));
  ASSERT_OK_AND_ASSIGN(Invocation stdin_apply, Parse("apply --filename -"));
  EXPECT_EQ(stdin_apply.command.file, "-");
}

// --- Refusals: exit 2 with a message naming the option and the fix ---

struct BadCase {
  std::string line;
  std::string message;  // a part of the message
};

class BadCommandLines : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadCommandLines, AreRefusedWithTheReason) {
  absl::StatusOr<Invocation> invocation = Parse(GetParam().line);
  EXPECT_THAT(invocation.status(), StatusIs(absl::StatusCode::kInvalidArgument,
                                            HasSubstr(GetParam().message)))
      << GetParam().line;
}

INSTANTIATE_TEST_SUITE_P(
    Table, BadCommandLines,
    ::testing::Values(
        BadCase{"-A", "-A needs the virtual service: -t VIP:PORT"},
        BadCase{"-A -t", "-t needs a value"},
        BadCase{"-A -f 1", "firewall-mark services (-f) are not supported"},
        BadCase{"-A -t 192.0.2.1:80 -6", "-6 only qualifies -f"},
        BadCase{"-A -t 192.0.2.1:80 -s xyz",
                "unknown scheduler \"xyz\"; one of rr wrr"},
        BadCase{"-A -t 192.0.2.1:80 -u 192.0.2.1:80",
                "a service is either TCP or UDP"},
        BadCase{"-A -t www.example.com:80", "is not an IP address"},
        BadCase{"-A -t 192.0.2.1:http", "port \"http\" is not a number"},
        BadCase{"-A -t 192.0.2.1:70000", "0..65535"},
        BadCase{"-A -t [2001:db8::1:80", "lacks the closing ]"},
        BadCase{"-A -t 192.0.2.1:80 -a", "one command at a time: -A and -a"},
        BadCase{"-A -t 192.0.2.1:80 -s rr -s wrr", "-s is given twice"},
        BadCase{"-A -t 192.0.2.1:80 -w 3", "-w does not go with -A"},
        BadCase{"-A -t 192.0.2.1:80 -M 255.255.255.0",
                "-M (persistence netmask) needs -p"},
        BadCase{"-A -t 192.0.2.1:80 -p 10 -M 255.0.255.0",
                "not a contiguous netmask"},
        BadCase{"-A -t 192.0.2.1:80 -p 10 -M 33", "0..32"},
        BadCase{"-A -t [2001:db8::1]:80 -p 10 -M 255.255.255.0",
                "not an IPv6 prefix length"},
        BadCase{"-A -t 192.0.2.1:80 -p 0", "at least 1 second"},
        BadCase{"-A -t 192.0.2.1:0 -s rr", "port 0"},
        BadCase{"-A -t 192.0.2.1:80 -s sh -b mh-port",
                "a flag of the mh scheduler, but -s is sh"},
        BadCase{"-A -t 192.0.2.1:80 -s rr -b sh-port",
                "a flag of the sh scheduler, but -s is rr"},
        BadCase{"-A -t 192.0.2.1:80 -b sh-sticky", "unknown flag"},
        BadCase{"-A -t 192.0.2.1:80 -g -m", "choose one forwarding method"},
        BadCase{"-A -t 192.0.2.1:80 --tun-type gue", "--tun-type needs -i"},
        BadCase{"-A -t 192.0.2.1:80 -i --tun-type gre",
                "unknown type \"gre\"; one of ipip, gue"},
        BadCase{"-A -t 192.0.2.1:80 -i --gue-port 1", "--gue-port needs"},
        BadCase{"-A -t 192.0.2.1:80 --ops", "one-packet scheduling"},
        BadCase{"-a -t 192.0.2.1:80", "-a needs the real server: -r"},
        BadCase{"-a -t 192.0.2.1:80 -r 2001:db8::2",
                "the real server is IPv6 but the service is IPv4"},
        BadCase{"-a -t 192.0.2.1:80 -r 198.51.100.2 -w 65536", "0..65535"},
        BadCase{"-a -t 192.0.2.1:80 -r 198.51.100.2 -w x",
                "-w: \"x\" is not a number"},
        BadCase{"-a -t 192.0.2.1:80 -r 198.51.100.2 -x 10 -y 20",
                "must not exceed"},
        BadCase{"-a -t 192.0.2.1:80 -r 198.51.100.2 -s rr",
                "-s does not go with -a"},
        BadCase{"-d -t 192.0.2.1:80 -r 198.51.100.2 -w 1",
                "-w does not go with -d"},
        BadCase{"-L --stats --rate", "--stats and --rate: choose one"},
        BadCase{"-L --rate-interval 2s", "--rate-interval goes with --rate"},
        BadCase{"-L -c", "-c (the connection table)"},
        BadCase{"-L --daemon", "sync daemon"},
        BadCase{"-L --timeout", "--timeout needs a value"},
        BadCase{"-L --timeout=soon", "is not a duration"},
        BadCase{"-L -o yaml", "unknown format \"yaml\"; one of table, json"},
        BadCase{"-C -t 192.0.2.1:80", "-t does not go with -C"},
        BadCase{"-L --bogus", "unknown option --bogus"},
        BadCase{"-Lq", "unknown option -q in -Lq"},
        BadCase{"-L extra", "unexpected argument \"extra\""},
        BadCase{"frobnicate", "unknown command \"frobnicate\""},
        BadCase{"apply", "apply needs -f FILE"},
        BadCase{"apply -f a.yaml extra", "unexpected argument \"extra\""},
        BadCase{"drain", "drain needs the node's name"},
        BadCase{"drain a b", "unexpected argument \"b\""},
        BadCase{"nodes --dry-run", "--dry-run does not go with nodes"},
        BadCase{"--controller= -L", "--controller: give HOST:PORT"}));

// --- Restore lines (what -S prints) ---

TEST(ParseRestoreLine, ReadsIpvsadmSaveLines) {
  ASSERT_OK_AND_ASSIGN(Command add,
                       ParseRestoreLine("-A -t 192.0.2.1:80 -s wlc -p 300 "
                                        "-M 255.255.255.0"));
  EXPECT_EQ(add.verb, Verb::kAddService);
  EXPECT_EQ(add.service.persistence().ipv4_prefix_length(), 24u);
  ASSERT_OK_AND_ASSIGN(
      Command server,
      ParseRestoreLine("-a -t 192.0.2.1:80 -r 198.51.100.2:80 -g -w 1\t\r"));
  EXPECT_EQ(server.verb, Verb::kAddServer);
  EXPECT_EQ(server.backend.weight(), 1u);
  ASSERT_OK_AND_ASSIGN(Command clear, ParseRestoreLine("-C"));
  EXPECT_EQ(clear.verb, Verb::kClear);
}

TEST(ParseRestoreLine, RefusesWhatIsNotAChange) {
  EXPECT_THAT(ParseRestoreLine("-L -n").status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("-L cannot be restored")));
  EXPECT_THAT(ParseRestoreLine("-A -t 192.0.2.1:80 --controller=x:1").status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("belongs on lbctl's command line")));
  EXPECT_THAT(ParseRestoreLine("-A -t 192.0.2.1:80 junk").status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("unexpected word \"junk\"")));
}

TEST(UsageText, MentionsEveryCommand) {
  std::string usage = UsageText();
  for (const char* word : {"-A", "-E", "-D", "-C", "-a", "-e", "-d", "-L", "-Z",
                           "-S", "-R", "apply", "nodes", "drain", "status",
                           "--controller", "LBCTL_TOKEN_FILE"}) {
    EXPECT_THAT(usage, HasSubstr(word));
  }
}

}  // namespace
}  // namespace anylb::lbctl
