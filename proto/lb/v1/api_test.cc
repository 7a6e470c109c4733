// The lb.v1 API keeps its style rules (checked through the descriptors, so a
// new field that breaks one fails here), and its generated gRPC code works
// over a real loopback connection.

#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "lb/v1/config.pb.h"
#include "lb/v1/controller.grpc.pb.h"
#include "lb/v1/controller.pb.h"
#include "lb/v1/health.pb.h"
#include "lb/v1/node.pb.h"
#include "lb/v1/service.pb.h"

namespace {

namespace pb = google::protobuf;

const pb::FileDescriptor* const kFiles[] = {
    lb::v1::Service::descriptor()->file(),
    lb::v1::HealthCheck::descriptor()->file(),
    lb::v1::Node::descriptor()->file(),
    lb::v1::ConfigSnapshot::descriptor()->file(),
    lb::v1::CreateServiceRequest::descriptor()->file(),
};

std::string UpperSnake(const std::string& camel) {
  std::string out;
  for (size_t i = 0; i < camel.size(); ++i) {
    char c = camel[i];
    if (i > 0 && std::isupper(static_cast<unsigned char>(c))) out += '_';
    out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return out;
}

void CollectMessages(const pb::Descriptor* m,
                     std::vector<const pb::Descriptor*>* out) {
  out->push_back(m);
  for (int i = 0; i < m->nested_type_count(); ++i) {
    CollectMessages(m->nested_type(i), out);
  }
}

std::vector<const pb::Descriptor*> AllMessages() {
  std::vector<const pb::Descriptor*> out;
  for (const auto* f : kFiles) {
    for (int i = 0; i < f->message_type_count(); ++i) {
      CollectMessages(f->message_type(i), &out);
    }
  }
  return out;
}

std::vector<const pb::EnumDescriptor*> AllEnums() {
  std::vector<const pb::EnumDescriptor*> out;
  for (const auto* f : kFiles) {
    for (int i = 0; i < f->enum_type_count(); ++i) out.push_back(f->enum_type(i));
  }
  for (const auto* m : AllMessages()) {
    for (int i = 0; i < m->enum_type_count(); ++i) out.push_back(m->enum_type(i));
  }
  return out;
}

TEST(ApiStyle, AllFilesAreInVersionedPackage) {
  for (const auto* f : kFiles) {
    EXPECT_EQ(f->package(), "lb.v1") << f->name();
    EXPECT_EQ(f->name().rfind("lb/v1/", 0), 0u) << f->name();
  }
}

TEST(ApiStyle, EveryEnumStartsWithPrefixedUnspecifiedZero) {
  const auto enums = AllEnums();
  ASSERT_GE(enums.size(), 10u);
  for (const auto* e : enums) {
    const std::string prefix = UpperSnake(e->name()) + "_";
    ASSERT_GT(e->value_count(), 1) << e->full_name();
    EXPECT_EQ(e->value(0)->number(), 0) << e->full_name();
    EXPECT_EQ(e->value(0)->name(), prefix + "UNSPECIFIED") << e->full_name();
    for (int i = 0; i < e->value_count(); ++i) {
      EXPECT_EQ(e->value(i)->name().rfind(prefix, 0), 0u)
          << e->value(i)->full_name() << " lacks prefix " << prefix;
    }
  }
}

TEST(ApiStyle, TimesAreDurations) {
  for (const auto* m : AllMessages()) {
    for (int i = 0; i < m->field_count(); ++i) {
      const auto* f = m->field(i);
      const std::string& n = f->name();
      const bool looks_like_time =
          n == "interval" || n == "timeout" || n.ends_with("_period") ||
          n.ends_with("_timeout") || n.ends_with("_interval");
      if (!looks_like_time) continue;
      ASSERT_EQ(f->type(), pb::FieldDescriptor::TYPE_MESSAGE) << f->full_name();
      EXPECT_EQ(f->message_type()->full_name(), "google.protobuf.Duration")
          << f->full_name();
    }
  }
}

TEST(ApiStyle, RepeatedFieldsHavePluralNames) {
  // Names that are plural in meaning without ending in "s".
  const std::set<std::string> kAllowed = {"argv", "notify_up", "notify_down",
                                          "backend_health"};
  for (const auto* m : AllMessages()) {
    for (int i = 0; i < m->field_count(); ++i) {
      const auto* f = m->field(i);
      if (!f->is_repeated() || f->is_map()) continue;
      if (kAllowed.count(f->name())) continue;
      EXPECT_TRUE(f->name().ends_with("s")) << f->full_name();
    }
  }
}

TEST(ApiStyle, FieldNamesAreLowerSnakeCase) {
  for (const auto* m : AllMessages()) {
    for (int i = 0; i < m->field_count(); ++i) {
      const std::string& n = m->field(i)->name();
      EXPECT_TRUE(std::all_of(n.begin(), n.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
      })) << m->field(i)->full_name();
    }
  }
}

lb::v1::Service ExampleService() {
  lb::v1::Service s;
  s.set_name("web");
  s.set_vip("2001:db8::10");
  s.set_port(443);
  s.set_protocol(lb::v1::PROTOCOL_TCP);
  s.set_scheduler(lb::v1::SCHEDULER_MH);
  s.mutable_scheduler_flags()->set_fallback(true);
  s.set_maglev_table_size(65537);
  s.mutable_forwarding()->set_mode(lb::v1::FORWARDING_MODE_TUN);
  s.mutable_forwarding()->set_tunnel_type(lb::v1::TUNNEL_TYPE_GUE);
  s.mutable_persistence()->mutable_timeout()->set_seconds(300);
  s.mutable_persistence()->set_ipv6_prefix_length(64);
  auto* b = s.add_backends();
  b->set_address("2001:db8:1::1");
  b->set_weight(3);
  auto* hc = s.mutable_health_check();
  hc->mutable_interval()->set_seconds(2);
  hc->mutable_http()->set_path("/healthz");
  hc->mutable_http()->add_expected_statuses()->set_min(200);
  return s;
}

TEST(ApiEncoding, ServiceSurvivesBinaryRoundTrip) {
  const lb::v1::Service s = ExampleService();
  std::string wire;
  ASSERT_TRUE(s.SerializeToString(&wire));
  lb::v1::Service back;
  ASSERT_TRUE(back.ParseFromString(wire));
  EXPECT_EQ(back.SerializeAsString(), wire);
  EXPECT_EQ(back.backends(0).address(), "2001:db8:1::1");
  EXPECT_EQ(back.health_check().check_case(), lb::v1::HealthCheck::kHttp);
}

TEST(ApiEncoding, ServiceSurvivesJsonRoundTripWithProtoFieldNames) {
  // Config files and `lbctl -o json` use the proto field names.
  pb::util::JsonPrintOptions print;
  print.preserve_proto_field_names = true;
  std::string json;
  ASSERT_TRUE(pb::util::MessageToJsonString(ExampleService(), &json, print).ok());
  EXPECT_NE(json.find("\"forwarding\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"FORWARDING_MODE_TUN\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"300s\""), std::string::npos) << json;
  lb::v1::Service back;
  ASSERT_TRUE(pb::util::JsonStringToMessage(json, &back).ok());
  EXPECT_EQ(back.SerializeAsString(), ExampleService().SerializeAsString());
}

TEST(ApiEncoding, JsonWithUnknownFieldIsRejected) {
  lb::v1::Service s;
  auto status = pb::util::JsonStringToMessage(R"({"vip":"192.0.2.1","wieght":3})", &s);
  EXPECT_FALSE(status.ok());
}

// A controller that serves two revisions on WatchConfig, to check that the
// generated streaming stubs work end to end over TCP loopback.
class TwoRevisionController final : public lb::v1::Controller::Service {
 public:
  grpc::Status WatchConfig(
      grpc::ServerContext*, const lb::v1::WatchConfigRequest* request,
      grpc::ServerWriter<lb::v1::WatchConfigResponse>* writer) override {
    if (request->node_name().empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "node_name is empty");
    }
    for (uint64_t rev = request->known_revision() + 1;
         rev <= request->known_revision() + 2; ++rev) {
      lb::v1::WatchConfigResponse resp;
      resp.mutable_snapshot()->set_revision(rev);
      resp.mutable_snapshot()->mutable_node()->set_node_name(request->node_name());
      *resp.mutable_snapshot()->add_services() = ExampleService();
      if (!writer->Write(resp)) break;
    }
    return grpc::Status::OK;
  }
};

TEST(ApiGrpc, WatchConfigStreamsOverLoopback) {
  TwoRevisionController service;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  ASSERT_GT(port, 0);

  auto stub = lb::v1::Controller::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  lb::v1::WatchConfigRequest req;
  req.set_node_name("lb1");
  req.set_known_revision(7);
  auto reader = stub->WatchConfig(&ctx, req);
  std::vector<uint64_t> revisions;
  lb::v1::WatchConfigResponse resp;
  while (reader->Read(&resp)) {
    revisions.push_back(resp.snapshot().revision());
    EXPECT_EQ(resp.snapshot().node().node_name(), "lb1");
    EXPECT_EQ(resp.snapshot().services(0).vip(), "2001:db8::10");
  }
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(revisions, (std::vector<uint64_t>{8, 9}));

  // Unimplemented RPCs answer UNIMPLEMENTED, and errors carry their message.
  grpc::ClientContext ctx2;
  lb::v1::ServiceResponse out;
  EXPECT_EQ(stub->GetService(&ctx2, lb::v1::GetServiceRequest(), &out).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
  grpc::ClientContext ctx3;
  auto bad = stub->WatchConfig(&ctx3, lb::v1::WatchConfigRequest());
  while (bad->Read(&resp)) {
  }
  grpc::Status st = bad->Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(st.error_message(), "node_name is empty");
  server->Shutdown();
}

}  // namespace
