// load_bench: peak resident memory of loading a large checkpoint, against what has to be resident. Writes a
// synthetic bf16 safetensors checkpoint of the TinyLlama-1.1B shape (dim 2048, ffn 5632, 22 layers, 32 heads, 4 KV
// heads, vocab 32000, untied: 1.1e9 parameters, 2.2 GB) into --dir, then loads it in a fresh child process per
// variant (the binary run again with --variant N: a fresh exec, so no allocator state of the parent's writing
// skews it) and reports the child's peak RSS (getrusage ru_maxrss, via wait4), its RSS once loaded, and the load
// time:
//   fp32, pages kept    the fp32 host copy with the file pages left resident (what reading a mapped checkpoint
//                       without dropping its pages costs: the copy + the whole file)
//   fp32 (LoadModelWeights)  the same through the WeightSource, each tensor's pages dropped once converted
//   cpu backend f32/bf16/q8_0  CpuBackend::Create from the mapped checkpoint (WeightSource), panel by panel into
//                       the weights type: no fp32 copy exists, so the peak is the packed weights + a few panels
//   gguf q8_0 → fp32    LoadModelWeights of the same model written as a Q8_0 GGUF (1.2 GB) by our writer
//   rm ...              the same shape as a reward model (score head [1, dim] instead of lm_head, written to
//                       --dir/rm): "rm f32 via fp32 copy" is the server's path before reward models took a
//                       WeightSource (LoadModelWeights, then a CPU backend packed from it); "rm f32/q8_0" is
//                       RewardModel::Load as the server does it now (packed panel by panel from the mapping)
// The sizes to compare with: the file, the fp32 copy, the packed weights. Not part of `make test`.
//   load_bench [--dir /tmp/llama-load-bench] [--layers 22] [--keep] [--threads 0]
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "convert/gguf_writer.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/model/model_source.h"
#include "engine/model/weight_source.h"
#include "engine/model/weights.h"
#include "engine/reward/reward_model.h"
#include "nlohmann/json.hpp"

ABSL_FLAG(std::string, dir, "/tmp/llama-load-bench", "where the synthetic checkpoint is written (removed after)");
ABSL_FLAG(int, layers, 22, "layers of the TinyLlama-1.1B shape (22: 2.2 GB of bf16)");
ABSL_FLAG(bool, keep, false, "keep the checkpoint (and reuse one already there)");
ABSL_FLAG(int, threads, 0, "CPU backend threads (0: all cores)");
ABSL_FLAG(int, variant, -1, "internal: run only variant N in this process and print its result line");

namespace llama {
namespace {

ModelConfig BenchConfig(int layers) {
  ModelConfig c;
  c.hidden_size = 2048;
  c.intermediate_size = 5632;
  c.num_hidden_layers = layers;
  c.num_attention_heads = 32;
  c.num_key_value_heads = 4;
  c.vocab_size = 32000;
  c.max_position_embeddings = 2048;
  c.torch_dtype = "bfloat16";
  return c;
}

int64_t NumElements(const TensorSpec& spec) {
  int64_t n = 1;
  for (int64_t d : spec.shape) n *= d;
  return n;
}

// Writes config.json and a bf16 model.safetensors, tensor by tensor in 1M-value chunks (the writer never holds
// more than a chunk). Matrices are uniform in ±0.05, norms 1 (the values do not change what loading costs).
absl::Status WriteBf16Checkpoint(const std::string& dir, const ModelConfig& c) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/config.json") << ModelConfigToJson(c);
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  int64_t offset = 0;
  const std::vector<TensorSpec> specs = ModelTensorSpecs(c);
  for (const TensorSpec& spec : specs) {
    const int64_t bytes = 2 * NumElements(spec);
    header[spec.name] = {{"dtype", "BF16"}, {"shape", spec.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - (8 + text.size()) % 8) % 8, ' ');
  std::ofstream out(dir + "/model.safetensors", std::ios::binary | std::ios::trunc);
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>(static_cast<uint64_t>(text.size()) >> (8 * i)));
  out << text;
  uint64_t state = 0x9e3779b97f4a7c15ull;
  std::vector<uint16_t> chunk(1 << 20);
  for (const TensorSpec& spec : specs) {
    const bool norm = spec.shape.size() == 1;
    for (int64_t done = 0, n = NumElements(spec); done < n;) {
      const int64_t m = std::min<int64_t>(n - done, static_cast<int64_t>(chunk.size()));
      for (int64_t i = 0; i < m; ++i) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        const float v = norm ? 1.0f : (static_cast<float>(state >> 40) / 16777216.0f - 0.5f) * 0.1f;
        uint32_t bits;
        std::memcpy(&bits, &v, 4);
        chunk[i] = static_cast<uint16_t>(bits >> 16);
      }
      out.write(reinterpret_cast<const char*>(chunk.data()), m * 2);
      done += m;
    }
  }
  out.flush();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", dir, "/model.safetensors"));
  return absl::OkStatus();
}

// The same model as a Q8_0 GGUF, with a made-up vocab of the right size (loading never tokenizes).
absl::Status WriteQ8Gguf(const std::string& dir, const std::string& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<WeightSource> source, OpenWeightSource(dir));
  SentencePieceVocab vocab;
  vocab.byte_fallback = false;
  vocab.pieces = {{"<unk>", 0, PieceType::kUnknown}, {"<s>", 0, PieceType::kControl}, {"</s>", 0, PieceType::kControl}};
  for (int i = 3; i < source->config().vocab_size; ++i) vocab.pieces.push_back({absl::StrCat("p", i), 0, PieceType::kNormal});
  LlamaGgufOptions options;
  options.matrix_type = GgmlType::kQ8_0;
  return WriteLlamaGguf(path, *source, vocab, options);
}

// A source that never drops pages: what loading costs when the mapping stays resident.
class KeepPagesSource : public WeightSource {
 public:
  explicit KeepPagesSource(std::unique_ptr<WeightSource> inner) : inner_(std::move(inner)) {}
  const ModelConfig& config() const override { return inner_->config(); }
  absl::StatusOr<TensorInfo> Info(const std::string& name) const override { return inner_->Info(name); }
  absl::Status ReadRows(const std::string& name, int64_t b, int64_t e, float* out) const override {
    return inner_->ReadRows(name, b, e, out);
  }

 private:
  std::unique_ptr<WeightSource> inner_;
};

int64_t VmRssBytes() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  }
  return 0;
}

// What a variant measured while its weights were alive (set in the child, sent back with the Result).
int64_t g_rss_after = 0;

struct Variant {
  const char* name;
  // Loads, sets g_rss_after while what it loaded is still alive, then returns.
  std::function<absl::Status(const std::string& dir)> load;
};

struct Result {
  double load_seconds = 0;
  int64_t rss_after_bytes = 0;
  int64_t peak_bytes = 0;
  bool ok = false;
};

// In the child (--variant N): runs the variant and prints "<load seconds> <RSS once loaded>".
int RunVariant(const Variant& v, const std::string& dir) {
  const auto t0 = std::chrono::steady_clock::now();
  const absl::Status s = v.load(dir);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!s.ok()) {
    std::fprintf(stderr, "%s: %s\n", v.name, s.ToString().c_str());
    return 1;
  }
  std::printf("%.3f %lld\n", seconds, static_cast<long long>(g_rss_after));
  return 0;
}

// Runs variant `index` in a fresh exec of this binary; its peak RSS comes from wait4.
Result RunInChild(int index, const std::string& dir) {
  int fds[2];
  if (pipe(fds) != 0) return {};
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], STDOUT_FILENO);
    const std::string variant = absl::StrCat("--variant=", index), dir_flag = absl::StrCat("--dir=", dir),
                      threads = absl::StrCat("--threads=", absl::GetFlag(FLAGS_threads));
    execl("/proc/self/exe", "load_bench", variant.c_str(), dir_flag.c_str(), threads.c_str(), nullptr);
    _exit(127);
  }
  close(fds[1]);
  std::string out;
  char buffer[256];
  for (ssize_t n; (n = read(fds[0], buffer, sizeof(buffer))) > 0;) out.append(buffer, n);
  close(fds[0]);
  int status = 0;
  rusage usage{};
  wait4(pid, &status, 0, &usage);
  Result r;
  r.peak_bytes = static_cast<int64_t>(usage.ru_maxrss) * 1024;
  long long rss = 0;
  r.ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && std::sscanf(out.c_str(), "%lf %lld", &r.load_seconds, &rss) == 2;
  r.rss_after_bytes = rss;
  return r;
}

// CpuBackend::Create straight from the mapped checkpoint, matrices stored as `dtype`.
std::function<absl::Status(const std::string&)> CpuBackendVariant(int threads, WeightsDtype dtype) {
  return [threads, dtype](const std::string& d) -> absl::Status {
    ASSIGN_OR_RETURN(std::unique_ptr<WeightSource> source, OpenWeightSource(d));
    CpuBackendOptions options;
    options.num_threads = threads;
    options.num_blocks = 16;
    options.weights_dtype = dtype;
    ASSIGN_OR_RETURN(std::unique_ptr<CpuBackend> backend, CpuBackend::Create(*source, options));
    source.reset();
    g_rss_after = VmRssBytes();
    return absl::OkStatus();
  };
}

// A reward model of the checkpoint's shape in --dir/rm, with its backend stored as `dtype`; `via_fp32_copy`: loaded
// as before reward models took a WeightSource (LoadModelWeights, then the backend from host weights).
std::function<absl::Status(const std::string&)> RewardModelVariant(int threads, WeightsDtype dtype,
                                                                   bool via_fp32_copy) {
  return [threads, dtype, via_fp32_copy](const std::string& d) -> absl::Status {
    CpuBackendOptions options;
    options.num_threads = threads;
    options.num_blocks = 16;
    options.weights_dtype = dtype;
    const RewardModel::BackendFactory factory =
        [&options](const WeightSource& source) -> absl::StatusOr<std::unique_ptr<Backend>> {
      ASSIGN_OR_RETURN(std::unique_ptr<CpuBackend> backend, CpuBackend::Create(source, options));
      return std::unique_ptr<Backend>(std::move(backend));
    };
    std::unique_ptr<RewardModel> rm;
    if (via_fp32_copy) {
      ASSIGN_OR_RETURN(ModelWeights w, LoadModelWeights(d + "/rm"));
      ASSIGN_OR_RETURN(rm, RewardModel::Create(std::move(w), factory, {}));
    } else {
      ASSIGN_OR_RETURN(rm, RewardModel::Load(d + "/rm", factory, {}));
    }
    g_rss_after = VmRssBytes();
    return absl::OkStatus();
  };
}

std::vector<Variant> Variants(int threads) {
  return {
      {"fp32, pages kept", [](const std::string& d) -> absl::Status {
         ASSIGN_OR_RETURN(std::unique_ptr<WeightSource> inner, OpenWeightSource(d));
         KeepPagesSource source(std::move(inner));
         ASSIGN_OR_RETURN(ModelWeights w, MaterializeWeights(source));
         g_rss_after = VmRssBytes();
         return absl::OkStatus();
       }},
      {"fp32 (LoadModelWeights)", [](const std::string& d) -> absl::Status {
         ASSIGN_OR_RETURN(ModelWeights w, LoadModelWeights(d));
         g_rss_after = VmRssBytes();
         return absl::OkStatus();
       }},
      {"cpu backend f32", CpuBackendVariant(threads, WeightsDtype::kF32)},
      {"cpu backend bf16", CpuBackendVariant(threads, WeightsDtype::kBF16)},
      {"cpu backend q8_0", CpuBackendVariant(threads, WeightsDtype::kQ8_0)},
      {"gguf q8_0 -> fp32", [](const std::string& d) -> absl::Status {
         ASSIGN_OR_RETURN(ModelWeights w, LoadModelWeights(d + "/model-q8_0.gguf"));
         g_rss_after = VmRssBytes();
         return absl::OkStatus();
       }},
      {"rm f32 via fp32 copy", RewardModelVariant(threads, WeightsDtype::kF32, /*via_fp32_copy=*/true)},
      {"rm f32", RewardModelVariant(threads, WeightsDtype::kF32, false)},
      {"rm q8_0", RewardModelVariant(threads, WeightsDtype::kQ8_0, false)},
  };
}

int Main() {
  const std::string dir = absl::GetFlag(FLAGS_dir);
  const std::vector<Variant> variants = Variants(absl::GetFlag(FLAGS_threads));
  if (const int v = absl::GetFlag(FLAGS_variant); v >= 0) {
    return v < static_cast<int>(variants.size()) ? RunVariant(variants[v], dir) : 2;
  }
  const ModelConfig c = BenchConfig(absl::GetFlag(FLAGS_layers));
  int64_t params = 0;
  for (const TensorSpec& spec : ModelTensorSpecs(c)) params += NumElements(spec);
  ModelConfig rm_config = c;  // score [1, dim] in place of lm_head
  rm_config.num_labels = 1;
  const bool reuse = absl::GetFlag(FLAGS_keep) && std::filesystem::exists(dir + "/model.safetensors") &&
                     std::filesystem::exists(dir + "/model-q8_0.gguf") &&
                     std::filesystem::exists(dir + "/rm/model.safetensors");
  if (!reuse) {
    const auto t0 = std::chrono::steady_clock::now();
    if (absl::Status s = WriteBf16Checkpoint(dir, c); !s.ok()) {
      std::fprintf(stderr, "load_bench: %s\n", s.ToString().c_str());
      return 1;
    }
    if (absl::Status s = WriteBf16Checkpoint(dir + "/rm", rm_config); !s.ok()) {
      std::fprintf(stderr, "load_bench: %s\n", s.ToString().c_str());
      return 1;
    }
    if (absl::Status s = WriteQ8Gguf(dir, dir + "/model-q8_0.gguf"); !s.ok()) {
      std::fprintf(stderr, "load_bench: %s\n", s.ToString().c_str());
      return 1;
    }
    std::printf("wrote %s (safetensors bf16, GGUF q8_0) in %.1f s\n", dir.c_str(),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  const double gb = 1e9;
  const int64_t file_bytes = static_cast<int64_t>(std::filesystem::file_size(dir + "/model.safetensors"));
  const int64_t fp32_bytes = 4 * params;
  // Packed f32 panels hold every matrix (64-row panels; these row counts are multiples of 64, so no padding);
  // the norms stay in the backend's host weights.
  int64_t matrix_params = 0;
  for (const TensorSpec& spec : ModelTensorSpecs(c)) matrix_params += spec.shape.size() == 2 ? NumElements(spec) : 0;
  const int64_t packed_f32_bytes = 4 * matrix_params;
  const int64_t gguf_bytes = static_cast<int64_t>(std::filesystem::file_size(dir + "/model-q8_0.gguf"));
  std::printf("checkpoint: TinyLlama-1.1B shape with %d layers, %.3g parameters; file %.2f GB (bf16; the Q8_0 GGUF "
              "%.2f GB), fp32 copy %.2f GB, packed f32 %.2f GB; parent RSS %.0f MB\n",
              c.num_hidden_layers, static_cast<double>(params), file_bytes / gb, gguf_bytes / gb, fp32_bytes / gb,
              packed_f32_bytes / gb, VmRssBytes() / 1e6);
  std::printf("%-26s %10s %7s %7s %9s %12s %8s\n", "variant", "peak_GB", "/file", "/fp32", "/packed", "loaded_GB",
              "load_s");
  bool all_ok = true;
  for (size_t i = 0; i < variants.size(); ++i) {
    const Variant& v = variants[i];
    const Result r = RunInChild(static_cast<int>(i), dir);
    all_ok = all_ok && r.ok;
    std::printf("%-26s %10.2f %7.2f %7.2f %9.2f %12.2f %8.1f%s\n", v.name, r.peak_bytes / gb,
                static_cast<double>(r.peak_bytes) / file_bytes, static_cast<double>(r.peak_bytes) / fp32_bytes,
                static_cast<double>(r.peak_bytes) / packed_f32_bytes, r.rss_after_bytes / gb, r.load_seconds,
                r.ok ? "" : "  FAILED");
    std::fflush(stdout);
  }
  if (!absl::GetFlag(FLAGS_keep)) std::filesystem::remove_all(dir);
  return all_ok ? 0 : 1;
}

}  // namespace
}  // namespace llama

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("load_bench [--dir /tmp/llama-load-bench] [--layers 22] [--keep] [--threads 0]");
  absl::ParseCommandLine(argc, argv);
  return llama::Main();
}
