// The one place where absl::Status becomes grpc::Status (STYLE rule 6). Canonical codes map one to one; the message
// is kept. Metric labels use the same code names.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace llama::server {

grpc::Status ToGrpcStatus(const absl::Status& status);

// "OK", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED", … (the canonical upper-case names, as grpc-status documents).
std::string GrpcCodeName(grpc::StatusCode code);

}  // namespace llama::server
