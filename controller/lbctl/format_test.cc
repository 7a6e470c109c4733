#include "controller/lbctl/format.h"

#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "controller/lbctl/parse_args.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace anylb::lbctl {
namespace {

using ::testing::HasSubstr;

template <typename M>
M FromText(const std::string& text) {
  M message;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &message))
      << text;
  return message;
}

// Three services, given out of order: ipvsadm sorts TCP before UDP, IPv4
// before IPv6, then by address and port.
std::vector<lb::v1::Service> Services() {
  return {
      FromText<lb::v1::Service>(R"pb(
        name: "dns"
        vip: "192.0.2.53"
        port: 53
        protocol: PROTOCOL_UDP
        scheduler: SCHEDULER_SH
        scheduler_flags { fallback: true port: true }
        forwarding { mode: FORWARDING_MODE_FULLNAT }
        backends { address: "198.51.100.20" port: 5353 weight: 2 }
      )pb"),
      FromText<lb::v1::Service>(R"pb(
        name: "web6"
        vip: "2001:db8::10"
        port: 443
        protocol: PROTOCOL_TCP
        scheduler: SCHEDULER_MH
        persistence {
          timeout { seconds: 600 }
          ipv6_prefix_length: 64
        }
        forwarding {
          mode: FORWARDING_MODE_TUN
          tunnel_type: TUNNEL_TYPE_GUE
          gue_port: 7000
        }
        backends { address: "2001:db8:1::2" }
      )pb"),
      FromText<lb::v1::Service>(R"pb(
        name: "web"
        vip: "192.0.2.10"
        port: 80
        protocol: PROTOCOL_TCP
        scheduler: SCHEDULER_WLC
        persistence {
          timeout { seconds: 300 }
          ipv4_prefix_length: 24
        }
        forwarding { mode: FORWARDING_MODE_DR }
        backends {
          address: "198.51.100.10"
          weight: 0
          state: BACKEND_STATE_DRAINING
        }
        backends {
          address: "198.51.100.9"
          port: 80
          weight: 3
          upper_threshold: 100
          lower_threshold: 50
        }
        backends {
          address: "198.51.100.11"
          port: 8080
          forwarding { mode: FORWARDING_MODE_NAT }
        }
      )pb"),
  };
}

lb::v1::GetStatsResponse Stats() {
  return FromText<lb::v1::GetStatsResponse>(R"pb(
    services {
      service_name: "web"
      counters {
        connections: 12
        packets_in: 3456
        packets_out: 3000
        bytes_in: 123456789
        bytes_out: 2000000000000
      }
      backends {
        backend { service_name: "web" address: "198.51.100.9" port: 80 }
        counters {
          connections: 10
          packets_in: 3000
          packets_out: 2900
          bytes_in: 100000
          bytes_out: 200000
        }
        active_connections: 4
        inactive_connections: 1
      }
    }
  )pb");
}

TEST(FormatList, IpvsadmLayout) {
  EXPECT_EQ(FormatList(Services(), Stats(), ListOptions(), 42, true),
            "anylb controller revision 42 (services=3)\n"
            "Prot LocalAddress:Port Scheduler Flags\n"
            "  -> RemoteAddress:Port           Forward Weight ActiveConn "
            "InActConn\n"
            "TCP  192.0.2.10:80 wlc persistent 300 mask 255.255.255.0\n"
            "  -> 198.51.100.9:80              Route   3      4          1   "
            "      \n"
            "  -> 198.51.100.10:80             Route   0      0          0   "
            "       draining\n"
            "  -> 198.51.100.11:8080           Masq    1      0          0   "
            "      \n"
            "TCP  [2001:db8::10]:443 mh persistent 600 mask 64\n"
            "  -> [2001:db8:1::2]:443          GUE     1      0          0   "
            "      \n"
            "UDP  192.0.2.53:53 sh (sh-fallback,sh-port)\n"
            "  -> 198.51.100.20:5353           FullNat 2      0          0   "
            "      \n");
}

TEST(FormatList, OneServiceHasNoTitleLine) {
  std::vector<lb::v1::Service> one = {Services()[0]};
  std::string out = FormatList(one, {}, ListOptions(), 1, false);
  EXPECT_EQ(out.substr(0, out.find('\n')),
            "Prot LocalAddress:Port Scheduler Flags");
}

TEST(FormatList, Stats) {
  ListOptions options;
  options.columns = ListColumns::kStats;
  std::vector<lb::v1::Service> one = {Services()[2]};
  EXPECT_EQ(FormatList(one, Stats(), options, 1, false),
            "Prot LocalAddress:Port               Conns   InPkts  OutPkts  "
            "InBytes OutBytes\n"
            "  -> RemoteAddress:Port\n"
            "TCP  192.0.2.10:80                      12     3456     3000  "
            "123456K    2000G\n"
            "  -> 198.51.100.9:80                    10     3000     2900   "
            "100000   200000\n"
            "  -> 198.51.100.10:80                    0        0        0   "
            "     0        0\n"
            "  -> 198.51.100.11:8080                  0        0        0   "
            "     0        0\n");
  options.exact = true;
  EXPECT_THAT(FormatList(one, Stats(), options, 1, false),
              HasSubstr("TCP  192.0.2.10:80                      12     "
                        "3456     3000 123456789 2000000000000\n"));
}

TEST(FormatList, RateFromTwoSamples) {
  lb::v1::GetStatsResponse before = Stats();
  lb::v1::GetStatsResponse after = Stats();
  lb::v1::ServiceStats* web = after.mutable_services(0);
  web->mutable_counters()->set_connections(12 + 50);
  web->mutable_counters()->set_packets_in(3456 + 1000);
  web->mutable_backends(0)->mutable_counters()->set_connections(10 + 20);
  lb::v1::GetStatsResponse rate = RateOf(before, after, absl::Seconds(10));
  EXPECT_EQ(rate.services(0).counters().connections(), 5u);
  EXPECT_EQ(rate.services(0).counters().packets_in(), 100u);
  EXPECT_EQ(rate.services(0).counters().bytes_in(), 0u);
  EXPECT_EQ(rate.services(0).backends(0).counters().connections(), 2u);

  ListOptions options;
  options.columns = ListColumns::kRate;
  std::vector<lb::v1::Service> one = {Services()[2]};
  EXPECT_EQ(FormatList(one, rate, options, 1, false),
            "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    "
            "InBPS   OutBPS\n"
            "  -> RemoteAddress:Port\n"
            "TCP  192.0.2.10:80                       5      100        0   "
            "     0        0\n"
            "  -> 198.51.100.9:80                     2        0        0   "
            "     0        0\n"
            "  -> 198.51.100.10:80                    0        0        0   "
            "     0        0\n"
            "  -> 198.51.100.11:8080                  0        0        0   "
            "     0        0\n");
}

TEST(RateOf, ACounterThatWentDownCountsFromZero) {
  lb::v1::GetStatsResponse after = Stats();
  lb::v1::GetStatsResponse rate = RateOf(Stats(), after, absl::Seconds(1));
  EXPECT_EQ(rate.services(0).counters().connections(), 0u);
  after.mutable_services(0)->mutable_counters()->set_connections(4);
  rate = RateOf(Stats(), after, absl::Seconds(2));
  EXPECT_EQ(rate.services(0).counters().connections(), 2u);
}

TEST(FormatList, Thresholds) {
  ListOptions options;
  options.columns = ListColumns::kThresholds;
  std::vector<lb::v1::Service> one = {Services()[2]};
  std::string out = FormatList(one, Stats(), options, 1, false);
  EXPECT_THAT(out, HasSubstr("Prot LocalAddress:Port            Uthreshold "
                             "Lthreshold ActiveConn InActConn \n"));
  EXPECT_THAT(out, HasSubstr("  -> 198.51.100.9:80              100        "
                             "50         4          1         \n"));
}

// The fleet's health for "web": .9 up, .10 down (draining too), .11 not
// checked (absent).
lb::v1::GetHealthResponse Health() {
  return FromText<lb::v1::GetHealthResponse>(R"pb(
    backends {
      backend { service_name: "web" address: "198.51.100.9" port: 80 }
      state: HEALTH_STATE_UP
      nodes { node_name: "lb1" state: HEALTH_STATE_UP current: true }
    }
    backends {
      backend { service_name: "web" address: "198.51.100.10" }
      state: HEALTH_STATE_DOWN
      last_change { seconds: 1795507200 }
      last_error: "connect 198.51.100.10:80: Connection refused"
      reason: "2 of 2 nodes see it down (lb1: ...; lb2: ...)"
      nodes {
        node_name: "lb1"
        state: HEALTH_STATE_DOWN
        last_error: "connect 198.51.100.10:80: Connection refused"
        current: true
      }
    }
  )pb");
}

// 2026-11-24T08:00:00Z plus two minutes.
const absl::Time kNow = absl::FromUnixSeconds(1795507200 + 120);

TEST(FormatList, HealthColumn) {
  std::vector<lb::v1::Service> one = {Services()[2]};
  EXPECT_EQ(
      FormatList(one, Stats(), ListOptions(), 1, false, Health(), kNow),
      "Prot LocalAddress:Port Scheduler Flags\n"
      "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn "
      "Health\n"
      "TCP  192.0.2.10:80 wlc persistent 300 mask 255.255.255.0\n"
      "  -> 198.51.100.9:80              Route   3      4          1         "
      "up\n"
      "  -> 198.51.100.10:80             Route   0      0          0         "
      "down draining since 2026-11-24T08:00:00Z (2m ago): connect "
      "198.51.100.10:80: Connection refused\n"
      "  -> 198.51.100.11:8080           Masq    1      0          0         "
      "-\n");
}

TEST(FormatList, HealthColumnWithStatsAndThresholds) {
  std::vector<lb::v1::Service> one = {Services()[2]};
  ListOptions options;
  options.columns = ListColumns::kStats;
  EXPECT_EQ(FormatList(one, Stats(), options, 1, false, Health(), kNow),
            "Prot LocalAddress:Port               Conns   InPkts  OutPkts  "
            "InBytes OutBytes Health\n"
            "  -> RemoteAddress:Port\n"
            "TCP  192.0.2.10:80                      12     3456     3000  "
            "123456K    2000G\n"
            "  -> 198.51.100.9:80                    10     3000     2900   "
            "100000   200000 up\n"
            "  -> 198.51.100.10:80                    0        0        0   "
            "     0        0 down draining since 2026-11-24T08:00:00Z (2m "
            "ago): connect 198.51.100.10:80: Connection refused\n"
            "  -> 198.51.100.11:8080                  0        0        0   "
            "     0        0 -\n");
  options.columns = ListColumns::kThresholds;
  std::string out = FormatList(one, Stats(), options, 1, false, Health(), kNow);
  EXPECT_THAT(out, HasSubstr("Prot LocalAddress:Port            Uthreshold "
                             "Lthreshold ActiveConn InActConn  Health\n"));
  EXPECT_THAT(out, HasSubstr("  -> 198.51.100.9:80              100        "
                             "50         4          1          up\n"));
}

TEST(FormatList, NoHealthColumnWhenNothingIsChecked) {
  std::vector<lb::v1::Service> one = {Services()[2]};
  lb::v1::GetHealthResponse unchecked = FromText<lb::v1::GetHealthResponse>(
      R"pb(backends {
             backend { service_name: "web" address: "198.51.100.9" port: 80 }
           })pb");
  EXPECT_EQ(FormatList(one, Stats(), ListOptions(), 1, false, unchecked, kNow),
            FormatList(one, Stats(), ListOptions(), 1, false));
}

TEST(HealthText, DownWithoutErrorGivesTheReasonAndNoAgeWithoutNow) {
  lb::v1::BackendHealthView view = FromText<lb::v1::BackendHealthView>(R"pb(
    state: HEALTH_STATE_DOWN
    last_change { seconds: 1795507200 }
    reason: "1 of 1 node sees it down (lb2: down)"
  )pb");
  EXPECT_EQ(HealthText(view, absl::InfinitePast()),
            "down since 2026-11-24T08:00:00Z: 1 of 1 node sees it down (lb2: "
            "down)");
  EXPECT_EQ(HealthText(view, kNow + absl::Hours(3)),
            "down since 2026-11-24T08:00:00Z (3h ago): 1 of 1 node sees it "
            "down (lb2: down)");
  view.set_state(lb::v1::HEALTH_STATE_UP);
  view.set_dynamic_weight(20);
  EXPECT_EQ(HealthText(view, kNow), "up (dynamic weight 20)");
  EXPECT_EQ(HealthText(lb::v1::BackendHealthView(), kNow), "-");
}

TEST(WithHealth, AddsTheNodeViewsToTheJsonObject) {
  lb::v1::ListServicesResponse list;
  list.set_revision(7);
  std::string json = WithHealth(ToJson(list), Health());
  EXPECT_THAT(json, HasSubstr("\"revision\": \"7\""));
  EXPECT_THAT(json, HasSubstr("\"health\": {"));
  EXPECT_THAT(json, HasSubstr("\"node_name\": \"lb1\""));
  EXPECT_THAT(json, HasSubstr("\"HEALTH_STATE_DOWN\""));
}

TEST(FormatSave, IpvsadmSaveLines) {
  EXPECT_EQ(FormatSave(Services()),
            "-A -t 192.0.2.10:80 -s wlc -p 300 -M 255.255.255.0\n"
            "-a -t 192.0.2.10:80 -r 198.51.100.9:80 -g -w 3 -x 100 -y 50\n"
            "-a -t 192.0.2.10:80 -r 198.51.100.10:80 -g -w 0\n"
            "-a -t 192.0.2.10:80 -r 198.51.100.11:8080 -m -w 1\n"
            "-A -t [2001:db8::10]:443 -s mh -p 600 -M 64 -i --tun-type gue "
            "--gue-port 7000\n"
            "-a -t [2001:db8::10]:443 -r [2001:db8:1::2]:443 -i --tun-type "
            "gue --gue-port 7000 -w 1\n"
            "-A -u 192.0.2.53:53 -s sh -b sh-fallback,sh-port --fullnat\n"
            "-a -u 192.0.2.53:53 -r 198.51.100.20:5353 --fullnat -w 2\n");
}

// Every line -S prints is one the restore parser reads back into the same
// values.
TEST(FormatSave, EveryLineParsesBack) {
  std::string saved = FormatSave(Services());
  for (absl::string_view line :
       absl::StrSplit(saved, '\n', absl::SkipEmpty())) {
    auto command = ParseRestoreLine(line);
    ASSERT_TRUE(command.ok()) << line << ": " << command.status();
  }
  auto web = ParseRestoreLine(
      "-A -t 192.0.2.10:80 -s wlc -p 300 -M "
      "255.255.255.0");
  ASSERT_TRUE(web.ok());
  EXPECT_EQ(web->service.scheduler(), lb::v1::SCHEDULER_WLC);
  EXPECT_EQ(web->service.persistence().ipv4_prefix_length(), 24u);
  auto dns = ParseRestoreLine(
      "-A -u 192.0.2.53:53 -s sh -b sh-fallback,sh-port --fullnat");
  ASSERT_TRUE(dns.ok());
  EXPECT_TRUE(dns->service.scheduler_flags().fallback());
  EXPECT_TRUE(dns->service.scheduler_flags().port());
  EXPECT_EQ(dns->service.forwarding().mode(), lb::v1::FORWARDING_MODE_FULLNAT);
}

TEST(FormatDiff, ShowsChangesAndWhatHappened) {
  auto response = FromText<lb::v1::ApplyServicesResponse>(R"pb(
    revision: 7
    changes {
      kind: KIND_CREATE
      service_name: "web"
      details: "+ backend 198.51.100.2:80"
    }
    changes {
      kind: KIND_UPDATE
      service_name: "api"
      details: "scheduler: wlc -> mh"
    }
    changes { kind: KIND_DELETE service_name: "old" }
    changes { kind: KIND_UNCHANGED service_name: "dns" }
  )pb");
  EXPECT_EQ(FormatDiff(response, true),
            "+ web (create)\n"
            "    + backend 198.51.100.2:80\n"
            "~ api (update)\n"
            "    scheduler: wlc -> mh\n"
            "- old (delete)\n"
            "  1 service unchanged\n"
            "dry run: 3 changes, nothing stored (revision 7)\n");
  EXPECT_THAT(FormatDiff(response, false),
              HasSubstr("applied 3 changes: revision 7\n"));
  EXPECT_EQ(FormatDiff(lb::v1::ApplyServicesResponse(), false),
            "no change (revision 0)\n");
}

lb::v1::ListNodesResponse Nodes() {
  return FromText<lb::v1::ListNodesResponse>(R"pb(
    revision: 9
    nodes {
      settings { node_name: "lb2" admin_state: NODE_ADMIN_STATE_DRAINED }
      connected: false
    }
    nodes {
      settings {
        node_name: "lb1"
        weight: 10
        local_addresses: "203.0.113.16/28"
      }
      connected: true
      status {
        applied_revision: 9
        dataplane: DATAPLANE_STATE_LIVE
        version: "0.1"
        reported_at { seconds: 1700000000 }
        service_stats { service_name: "web" announced: true }
        service_stats { service_name: "dns" announced: true }
        service_stats { service_name: "web6" announced: false }
      }
    }
  )pb");
}

TEST(FormatNodes, OneRowPerNodeByName) {
  EXPECT_EQ(FormatNodes(Nodes()),
            "NODE  ADMIN    WEIGHT  CONNECTED  DATAPLANE  REVISION  VERSION  "
            "LOCAL ADDRESSES\n"
            "lb1   active   10      yes        live       9         0.1      "
            "203.0.113.16/28\n"
            "lb2   drained  1       no         -          -         -        "
            "-\n");
}

TEST(FormatStatus, RevisionPerNode) {
  EXPECT_EQ(FormatStatus(Nodes()),
            "controller revision 9\n"
            "NODE  REVISION  IN SYNC  DATAPLANE  ANNOUNCED  ADMIN    "
            "REPORTED\n"
            "lb1   9         yes      live       2 of 3     active   "
            "2023-11-14T22:13:20Z\n"
            "lb2   -         -        -          -          drained  -\n"
            "1 of 2 nodes at revision 9\n");
  EXPECT_EQ(FormatStatus(lb::v1::ListNodesResponse()),
            "controller revision 0\nno nodes registered\n");
}

TEST(ToJson, ProtoFieldNames) {
  lb::v1::ListServicesResponse response;
  response.set_revision(3);
  *response.add_services() = Services()[0];
  std::string json = ToJson(response);
  EXPECT_THAT(json, HasSubstr("\"scheduler_flags\""));
  EXPECT_THAT(json, HasSubstr("\"SCHEDULER_SH\""));
  EXPECT_EQ(json.back(), '\n');
}

}  // namespace
}  // namespace anylb::lbctl
