// CHECK macros for invariants of our own code (Abseil 20220623 ships no absl/log). A failed CHECK prints the
// expression, file and line and aborts; CHECK_EQ and friends also print both operands ("3 vs. 4"). User input
// never reaches a CHECK: it gets an absl::Status instead (INVALID_ARGUMENT).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <ostream>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"

namespace llama::check_internal {

template <typename T, typename = void>
struct IsStreamable : std::false_type {};
template <typename T>
struct IsStreamable<T, std::void_t<decltype(std::declval<std::ostream&>() << std::declval<const T&>())>>
    : std::true_type {};

// An operand as text: what operator<< prints, enums as their underlying number, anything else a placeholder.
template <typename T>
std::string OperandText(const T& value) {
  std::ostringstream out;
  if constexpr (std::is_enum_v<T>) {
    out << static_cast<long long>(static_cast<std::underlying_type_t<T>>(value));
  } else if constexpr (std::is_same_v<T, char> || std::is_same_v<T, signed char> ||
                       std::is_same_v<T, unsigned char>) {
    out << static_cast<int>(value);  // bytes print as numbers, not as characters
  } else if constexpr (IsStreamable<T>::value) {
    out << value;
  } else {
    out << "(unprintable)";
  }
  return out.str();
}

[[noreturn]] inline void CheckFailed(const char* expr, const char* file, int line, const std::string& detail) {
  std::fprintf(stderr, "CHECK failed: %s%s at %s:%d\n", expr, detail.c_str(), file, line);
  std::abort();
}

template <typename A, typename B>
[[noreturn]] void CheckOpFailed(const char* expr, const char* file, int line, const A& a, const B& b) {
  CheckFailed(expr, file, line, " (" + OperandText(a) + " vs. " + OperandText(b) + ")");
}

}  // namespace llama::check_internal

#define CHECK(cond)                                                                 \
  do {                                                                              \
    if (!(cond)) ::llama::check_internal::CheckFailed(#cond, __FILE__, __LINE__, ""); \
  } while (0)

// Each operand is evaluated exactly once.
#define LLAMA_CHECK_OP(op, a, b)                                                                  \
  do {                                                                                            \
    const auto& llama_check_a = (a);                                                              \
    const auto& llama_check_b = (b);                                                              \
    if (!(llama_check_a op llama_check_b)) {                                                      \
      ::llama::check_internal::CheckOpFailed(#a " " #op " " #b, __FILE__, __LINE__, llama_check_a, \
                                             llama_check_b);                                      \
    }                                                                                             \
  } while (0)

#define CHECK_EQ(a, b) LLAMA_CHECK_OP(==, a, b)
#define CHECK_NE(a, b) LLAMA_CHECK_OP(!=, a, b)
#define CHECK_LT(a, b) LLAMA_CHECK_OP(<, a, b)
#define CHECK_LE(a, b) LLAMA_CHECK_OP(<=, a, b)
#define CHECK_GT(a, b) LLAMA_CHECK_OP(>, a, b)
#define CHECK_GE(a, b) LLAMA_CHECK_OP(>=, a, b)

#define CHECK_OK(expr)                                                                                   \
  do {                                                                                                   \
    const ::absl::Status llama_check_status = (expr);                                                    \
    if (!llama_check_status.ok()) {                                                                      \
      ::llama::check_internal::CheckFailed(#expr " is OK", __FILE__, __LINE__,                           \
                                           ": " + llama_check_status.ToString());                        \
    }                                                                                                    \
  } while (0)
