#include "convert/llama2c.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/check.h"
#include "base/status_macros.h"

namespace llama {
namespace {

constexpr int64_t kHeaderBytes = 7 * 4;

// A read-only mapping of a whole file, unmapped on destruction.
class MappedFile {
 public:
  ~MappedFile() {
    if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
  }
  absl::Status Map(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return absl::NotFoundError(absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
    struct stat st;
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
      ::close(fd);
      return absl::InvalidArgumentError(absl::StrCat(path, ": not a non-empty regular file"));
    }
    size_ = static_cast<size_t>(st.st_size);
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED) return absl::InvalidArgumentError(absl::StrCat(path, ": mmap failed"));
    data_ = static_cast<const uint8_t*>(p);
    return absl::OkStatus();
  }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

absl::StatusOr<Llama2cHeader> ParseHeader(const MappedFile& file, const std::string& path) {
  if (file.size() < kHeaderBytes) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": too short for a llama2.c header (", file.size(), " bytes)"));
  }
  int32_t h[7];
  std::memcpy(h, file.data(), sizeof(h));
  if (static_cast<uint32_t>(h[0]) == 0x616b3432u) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": llama2.c export format version >= 1 (magic 'ak42') is not supported; use the legacy "
                           "(version 0) .bin"));
  }
  Llama2cHeader hdr{h[0], h[1], h[2], h[3], h[4], h[5] < 0 ? -h[5] : h[5], h[5] > 0, h[6]};
  const bool ok = hdr.dim > 0 && hdr.hidden_dim > 0 && hdr.n_layers > 0 && hdr.n_heads > 0 && hdr.n_kv_heads > 0 &&
                  hdr.vocab_size > 0 && hdr.seq_len > 0 && hdr.dim % hdr.n_heads == 0 &&
                  hdr.n_heads % hdr.n_kv_heads == 0 && (hdr.dim / hdr.n_heads) % 2 == 0;
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": implausible llama2.c header: dim ", h[0], ", hidden_dim ", h[1], ", n_layers ", h[2], ", n_heads ",
        h[3], ", n_kv_heads ", h[4], ", vocab_size ", h[5], ", seq_len ", h[6]));
  }
  return hdr;
}

// Hands out consecutive fp32 arrays from the mapped file (the offsets of run.c's memory_map_weights).
class FloatCursor {
 public:
  explicit FloatCursor(const uint8_t* p) : p_(p) {}
  std::vector<float> Take(int64_t n) {
    std::vector<float> out(static_cast<size_t>(n));
    std::memcpy(out.data(), p_, static_cast<size_t>(n) * 4);  // host is little-endian, like the file
    p_ += n * 4;
    return out;
  }
  void Skip(int64_t n) { p_ += n * 4; }

 private:
  const uint8_t* p_;
};

ModelConfig ConfigFromHeader(const Llama2cHeader& h) {
  ModelConfig c;
  c.hidden_size = h.dim;
  c.intermediate_size = h.hidden_dim;
  c.num_hidden_layers = h.n_layers;
  c.num_attention_heads = h.n_heads;
  c.num_key_value_heads = h.n_kv_heads;
  c.vocab_size = h.vocab_size;
  c.max_position_embeddings = h.seq_len;
  c.rms_norm_eps = 1e-5f;  // llama2.c's rmsnorm
  c.rope_theta = 10000.0f;
  c.tie_word_embeddings = h.shared_classifier;
  c.bos_token_id = 1;
  c.eos_token_id = 2;
  c.torch_dtype = "float32";
  return c;
}

// 128-bit so that a corrupt header cannot overflow the size computation.
__int128 ExpectedFloats(const Llama2cHeader& h) {
  const __int128 dim = h.dim, hidden = h.hidden_dim, layers = h.n_layers, vocab = h.vocab_size;
  const __int128 head = dim / h.n_heads, kv_dim = head * h.n_kv_heads;
  __int128 n = vocab * dim + layers * (2 * dim + 2 * dim * dim + 2 * kv_dim * dim + 3 * dim * hidden) + dim +
              __int128{h.seq_len} * head;  // freq_cis_real + freq_cis_imag
  if (!h.shared_classifier) n += vocab * dim;
  return n;
}

// Slices layer l's [rows, cols] matrix out of an [L, rows, cols] array.
std::vector<float> LayerSlice(const std::vector<float>& all, int l, int64_t rows, int64_t cols) {
  auto begin = all.begin() + l * rows * cols;
  return std::vector<float>(begin, begin + rows * cols);
}

}  // namespace

std::vector<float> PermuteInterleavedToRotateHalf(const std::vector<float>& w, int n_heads, int head_dim, int cols) {
  CHECK_EQ(w.size(), static_cast<size_t>(n_heads) * head_dim * cols);
  CHECK_EQ(head_dim % 2, 0);
  const int half = head_dim / 2;
  std::vector<float> out(w.size());
  for (int h = 0; h < n_heads; ++h) {
    for (int i = 0; i < half; ++i) {
      for (int c = 0; c < 2; ++c) {
        const float* src = w.data() + (static_cast<size_t>(h) * head_dim + 2 * i + c) * cols;
        float* dst = out.data() + (static_cast<size_t>(h) * head_dim + c * half + i) * cols;
        std::memcpy(dst, src, static_cast<size_t>(cols) * sizeof(float));
      }
    }
  }
  return out;
}

absl::StatusOr<ModelWeights> LoadLlama2c(const std::string& path) {
  MappedFile file;
  RETURN_IF_ERROR(file.Map(path));
  ASSIGN_OR_RETURN(Llama2cHeader h, ParseHeader(file, path));
  const __int128 expected_bytes = kHeaderBytes + 4 * ExpectedFloats(h);
  if (static_cast<__int128>(file.size()) != expected_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": file is ", file.size(), " bytes but its header (dim ", h.dim, ", ", h.n_layers, " layers, vocab ",
        h.vocab_size, h.shared_classifier ? ", shared" : ", unshared", " classifier) needs ",
        expected_bytes <= INT64_MAX ? absl::StrCat(static_cast<int64_t>(expected_bytes)) : "more than 2^63"));
  }
  ModelWeights w;
  w.config = ConfigFromHeader(h);
  const int64_t dim = h.dim, hidden = h.hidden_dim, layers = h.n_layers, head = dim / h.n_heads;
  const int64_t kv_dim = head * h.n_kv_heads;
  FloatCursor cur(file.data() + kHeaderBytes);
  w.embed_tokens = cur.Take(int64_t{h.vocab_size} * dim);   // [vocab, dim]
  const std::vector<float> rms_att = cur.Take(layers * dim);  // [L, dim]
  const std::vector<float> wq = cur.Take(layers * dim * dim);  // [L, dim, dim]
  const std::vector<float> wk = cur.Take(layers * kv_dim * dim);  // [L, kv_dim, dim]
  const std::vector<float> wv = cur.Take(layers * kv_dim * dim);  // [L, kv_dim, dim]
  const std::vector<float> wo = cur.Take(layers * dim * dim);  // [L, dim, dim]
  const std::vector<float> rms_ffn = cur.Take(layers * dim);  // [L, dim]
  const std::vector<float> w1 = cur.Take(layers * hidden * dim);  // [L, hidden, dim]
  const std::vector<float> w2 = cur.Take(layers * dim * hidden);  // [L, dim, hidden]
  const std::vector<float> w3 = cur.Take(layers * hidden * dim);  // [L, hidden, dim]
  w.final_norm = cur.Take(dim);
  cur.Skip(int64_t{h.seq_len} * head);  // freq_cis_real and freq_cis_imag, [seq_len, head/2] each: recomputed
  if (!h.shared_classifier) w.lm_head = cur.Take(int64_t{h.vocab_size} * dim);
  w.layers.resize(h.n_layers);
  for (int l = 0; l < h.n_layers; ++l) {
    LayerWeights& lw = w.layers[l];
    lw.attn_norm = LayerSlice(rms_att, l, 1, dim);
    lw.wq = PermuteInterleavedToRotateHalf(LayerSlice(wq, l, dim, dim), h.n_heads, head, dim);
    lw.wk = PermuteInterleavedToRotateHalf(LayerSlice(wk, l, kv_dim, dim), h.n_kv_heads, head, dim);
    lw.wv = LayerSlice(wv, l, kv_dim, dim);
    lw.wo = LayerSlice(wo, l, dim, dim);
    lw.ffn_norm = LayerSlice(rms_ffn, l, 1, dim);
    lw.w_gate = LayerSlice(w1, l, hidden, dim);  // SwiGLU: w2(silu(w1 x) * w3 x)
    lw.w_down = LayerSlice(w2, l, dim, hidden);
    lw.w_up = LayerSlice(w3, l, hidden, dim);
  }
  RETURN_IF_ERROR(w.config.Validate());
  return w;
}

}  // namespace llama
