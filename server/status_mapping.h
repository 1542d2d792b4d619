// The one place where absl::Status becomes grpc::Status (STYLE rule 6). Canonical codes map one to one; the message
// is kept. Metric labels use the same code names.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace llama::server {

grpc::Status ToGrpcStatus(const absl::Status& status);

// "OK", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED", … (the canonical upper-case names, as grpc-status documents).
// Takes the number: a grpc::StatusCode holding a value outside the enum's range (a code another peer sent, say 42)
// is undefined behaviour in C++ (UBSan found the test doing it, docs/reliability.md); other codes are "CODE_<n>".
std::string GrpcCodeName(int code);
inline std::string GrpcCodeName(grpc::StatusCode code) { return GrpcCodeName(static_cast<int>(code)); }

}  // namespace llama::server
