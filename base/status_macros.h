// Status propagation macros (Abseil 20220623 ships none): return the error of an absl::Status or
// absl::StatusOr<T> expression to the caller, or take the StatusOr's value.
#pragma once

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define LLAMA_CONCAT_INNER(a, b) a##b
#define LLAMA_CONCAT(a, b) LLAMA_CONCAT_INNER(a, b)

#define RETURN_IF_ERROR(expr)                   \
  do {                                          \
    ::absl::Status _status = (expr);            \
    if (!_status.ok()) return _status;          \
  } while (0)

#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(*tmp)

// ASSIGN_OR_RETURN(auto x, FunctionReturningStatusOr());
#define ASSIGN_OR_RETURN(lhs, expr) ASSIGN_OR_RETURN_IMPL(LLAMA_CONCAT(_statusor_, __LINE__), lhs, expr)
