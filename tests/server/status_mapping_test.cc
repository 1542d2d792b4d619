#include "server/status_mapping.h"

#include "gtest/gtest.h"

namespace llama::server {
namespace {

TEST(StatusMappingTest, EveryCanonicalCodeMapsOneToOneWithItsMessage) {
  const std::pair<absl::Status, grpc::StatusCode> cases[] = {
      {absl::InvalidArgumentError("bad"), grpc::StatusCode::INVALID_ARGUMENT},
      {absl::ResourceExhaustedError("full"), grpc::StatusCode::RESOURCE_EXHAUSTED},
      {absl::UnavailableError("draining"), grpc::StatusCode::UNAVAILABLE},
      {absl::DeadlineExceededError("late"), grpc::StatusCode::DEADLINE_EXCEEDED},
      {absl::CancelledError("gone"), grpc::StatusCode::CANCELLED},
      {absl::InternalError("boom"), grpc::StatusCode::INTERNAL},
      {absl::UnimplementedError("no rm"), grpc::StatusCode::UNIMPLEMENTED},
      {absl::NotFoundError("nf"), grpc::StatusCode::NOT_FOUND},
      {absl::FailedPreconditionError("fp"), grpc::StatusCode::FAILED_PRECONDITION},
      {absl::UnauthenticatedError("who"), grpc::StatusCode::UNAUTHENTICATED},
  };
  for (const auto& [in, code] : cases) {
    const grpc::Status out = ToGrpcStatus(in);
    EXPECT_EQ(out.error_code(), code) << in;
    EXPECT_EQ(out.error_message(), std::string(in.message()));
  }
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
}

TEST(StatusMappingTest, CodeNamesAreTheCanonicalUpperCaseNames) {
  EXPECT_EQ(GrpcCodeName(grpc::StatusCode::OK), "OK");
  EXPECT_EQ(GrpcCodeName(grpc::StatusCode::INVALID_ARGUMENT), "INVALID_ARGUMENT");
  EXPECT_EQ(GrpcCodeName(grpc::StatusCode::RESOURCE_EXHAUSTED), "RESOURCE_EXHAUSTED");
  EXPECT_EQ(GrpcCodeName(grpc::StatusCode::DEADLINE_EXCEEDED), "DEADLINE_EXCEEDED");
  EXPECT_EQ(GrpcCodeName(grpc::StatusCode::UNAVAILABLE), "UNAVAILABLE");
  // A code outside grpc::StatusCode goes in as a number: casting 42 to the enum was undefined behaviour (UBSan).
  EXPECT_EQ(GrpcCodeName(42), "CODE_42");
  EXPECT_EQ(GrpcCodeName(-7), "CODE_-7");
}

}  // namespace
}  // namespace llama::server
