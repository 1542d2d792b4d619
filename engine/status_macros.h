// Small CHECK and status-propagation macros (Abseil 20220623 ships neither absl/log nor status macros).
// CHECK is for invariants of our own code: it aborts with the expression, file and line. User input never reaches
// a CHECK; it gets an absl::Status instead.
#pragma once

#include <cstdio>
#include <cstdlib>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define LLAMA_CONCAT_INNER(a, b) a##b
#define LLAMA_CONCAT(a, b) LLAMA_CONCAT_INNER(a, b)

#define CHECK(cond)                                                                     \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "CHECK failed: %s at %s:%d\n", #cond, __FILE__, __LINE__);  \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)

#define CHECK_EQ(a, b) CHECK((a) == (b))
#define CHECK_NE(a, b) CHECK((a) != (b))
#define CHECK_LT(a, b) CHECK((a) < (b))
#define CHECK_LE(a, b) CHECK((a) <= (b))
#define CHECK_GT(a, b) CHECK((a) > (b))
#define CHECK_GE(a, b) CHECK((a) >= (b))
#define CHECK_OK(expr)                                                                              \
  do {                                                                                              \
    const ::absl::Status _st = (expr);                                                              \
    if (!_st.ok()) {                                                                                \
      std::fprintf(stderr, "CHECK_OK failed: %s at %s:%d: %s\n", #expr, __FILE__, __LINE__,         \
                   _st.ToString().c_str());                                                         \
      std::abort();                                                                                 \
    }                                                                                               \
  } while (0)

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
