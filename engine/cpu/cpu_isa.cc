#include "engine/cpu/cpu_isa.h"

#include <cpuid.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"

namespace llama {

const char* CpuIsaName(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kScalar:
      return "scalar";
    case CpuIsa::kAvx2:
      return "avx2";
    case CpuIsa::kAvx512:
      return "avx512";
  }
  return "unknown";
}

absl::StatusOr<CpuIsa> ParseCpuIsa(const std::string& name) {
  for (CpuIsa isa : {CpuIsa::kScalar, CpuIsa::kAvx2, CpuIsa::kAvx512}) {
    if (name == CpuIsaName(isa)) return isa;
  }
  return absl::InvalidArgumentError("unknown CPU ISA '" + name + "' (expected scalar, avx2 or avx512)");
}

// F16C from CPUID leaf 1 (ECX bit 29) directly: clang 14's __builtin_cpu_supports does not know "f16c" (the
// sanitizer and fuzz builds use clang).
namespace {
bool HasF16c() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & bit_F16C) != 0;
}
}  // namespace

bool CpuSupports(CpuIsa isa) {
  __builtin_cpu_init();
  switch (isa) {
    case CpuIsa::kScalar:
      return true;
    case CpuIsa::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && HasF16c();
    case CpuIsa::kAvx512:
      return CpuSupports(CpuIsa::kAvx2) && __builtin_cpu_supports("avx512f") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512vl");
  }
  return false;
}

bool CpuHasAvx512Vnni() { return CpuSupports(CpuIsa::kAvx512) && __builtin_cpu_supports("avx512vnni"); }

bool UseAvx512Vnni() {
  static const bool use = [] {
    const char* flag = std::getenv("LLAMA_CPU_VNNI");
    return CpuHasAvx512Vnni() && !(flag != nullptr && std::string(flag) == "0");
  }();
  return use;
}

CpuIsa DetectCpuIsa() {
  if (CpuSupports(CpuIsa::kAvx512)) return CpuIsa::kAvx512;
  if (CpuSupports(CpuIsa::kAvx2)) return CpuIsa::kAvx2;
  return CpuIsa::kScalar;
}

absl::StatusOr<CpuIsa> RequestedCpuIsa() {
  const char* forced = std::getenv("LLAMA_CPU_ISA");
  if (forced == nullptr || *forced == '\0') return DetectCpuIsa();
  absl::StatusOr<CpuIsa> isa = ParseCpuIsa(forced);
  if (!isa.ok()) return absl::InvalidArgumentError(absl::StrCat("LLAMA_CPU_ISA: ", isa.status().message()));
  if (!CpuSupports(*isa)) {
    return absl::FailedPreconditionError(absl::StrCat("LLAMA_CPU_ISA=", forced, ": this CPU does not support it"));
  }
  return *isa;
}

CpuIsa ActiveCpuIsa() {
  static const CpuIsa isa = [] {
    absl::StatusOr<CpuIsa> requested = RequestedCpuIsa();
    if (requested.ok()) return *requested;
    std::fprintf(stderr, "%s; using %s\n", std::string(requested.status().message()).c_str(),
                 CpuIsaName(DetectCpuIsa()));
    return DetectCpuIsa();
  }();
  return isa;
}

}  // namespace llama
