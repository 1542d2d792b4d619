// HealthService (server/health_service.h) on an in-process gRPC server, no model: every known service starts
// NOT_SERVING, Check of an unknown one is NOT_FOUND, Watch sends the current status and each change, Shutdown pins
// NOT_SERVING, and the service's descriptor is in the generated pool (what server reflection serves, issue 17).
#include "server/health_service.h"

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace llama::server {
namespace {

namespace health = ::grpc::health::v1;
using Response = health::HealthCheckResponse;

class HealthServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::EnableDefaultHealthCheckService(false);
    service_ = std::make_unique<HealthService>(std::vector<std::string>{"", "llamachat.v1.ChatService"});
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = health::Health::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    server_->Shutdown();
    server_->Wait();
  }

  // The status Check answers, or -code when the call fails.
  int Check(const std::string& service) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    health::HealthCheckRequest request;
    request.set_service(service);
    Response response;
    grpc::Status status = stub_->Check(&context, request, &response);
    return status.ok() ? response.status() : -status.error_code();
  }

  std::unique_ptr<HealthService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<health::Health::Stub> stub_;
};

TEST_F(HealthServiceTest, EveryServiceStartsNotServing) {
  EXPECT_EQ(Check(""), Response::NOT_SERVING);
  EXPECT_EQ(Check("llamachat.v1.ChatService"), Response::NOT_SERVING);
}

TEST_F(HealthServiceTest, UnknownServiceIsNotFound) {
  EXPECT_EQ(Check("no.such.Service"), -grpc::StatusCode::NOT_FOUND);
}

TEST_F(HealthServiceTest, SetServingAndShutdownPinsNotServing) {
  service_->SetServingStatus(true);
  EXPECT_EQ(Check(""), Response::SERVING);
  EXPECT_EQ(Check("llamachat.v1.ChatService"), Response::SERVING);
  service_->SetServingStatus("llamachat.v1.ChatService", false);
  EXPECT_EQ(Check(""), Response::SERVING);
  EXPECT_EQ(Check("llamachat.v1.ChatService"), Response::NOT_SERVING);
  service_->Shutdown();
  service_->SetServingStatus(true);  // ignored after Shutdown
  EXPECT_EQ(Check(""), Response::NOT_SERVING);
  EXPECT_EQ(Check("llamachat.v1.ChatService"), Response::NOT_SERVING);
}

TEST_F(HealthServiceTest, WatchSendsTheCurrentStatusThenEachChange) {
  grpc::ClientContext context;
  health::HealthCheckRequest request;
  request.set_service("llamachat.v1.ChatService");
  std::unique_ptr<grpc::ClientReader<Response>> reader = stub_->Watch(&context, request);
  Response response;
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), Response::NOT_SERVING);
  service_->SetServingStatus(true);
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), Response::SERVING);
  service_->Shutdown();
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), Response::NOT_SERVING);
  context.TryCancel();
  while (reader->Read(&response)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

TEST_F(HealthServiceTest, WatchOfAnUnknownServiceSaysServiceUnknown) {
  grpc::ClientContext context;
  health::HealthCheckRequest request;
  request.set_service("no.such.Service");
  std::unique_ptr<grpc::ClientReader<Response>> reader = stub_->Watch(&context, request);
  Response response;
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), Response::SERVICE_UNKNOWN);
  context.TryCancel();
  while (reader->Read(&response)) {
  }
  reader->Finish();
}

TEST_F(HealthServiceTest, ServerShutdownEndsOpenWatches) {
  grpc::ClientContext context;
  health::HealthCheckRequest request;
  std::unique_ptr<grpc::ClientReader<Response>> reader = stub_->Watch(&context, request);
  Response response;
  ASSERT_TRUE(reader->Read(&response));
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
  while (reader->Read(&response)) {
  }
  EXPECT_FALSE(reader->Finish().ok());
}

// What server reflection resolves: the health service's file descriptor is in the generated pool.
TEST(HealthServiceDescriptor, IsInTheGeneratedPool) {
  const google::protobuf::ServiceDescriptor* service =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName("grpc.health.v1.Health");
  ASSERT_NE(service, nullptr);
  EXPECT_EQ(service->file()->name(), "grpc/health/v1/health.proto");
  EXPECT_NE(service->FindMethodByName("Check"), nullptr);
  EXPECT_NE(service->FindMethodByName("Watch"), nullptr);
}

}  // namespace
}  // namespace llama::server
