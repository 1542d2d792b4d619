// tokenizer_bench: encode throughput (MB/s of input text, median of --repeats) of our tokenizer
// (engine/text/sentencepiece_bpe.h) against libsentencepiece (the reference module, when built:
// LLAMA_SENTENCEPIECE_MODULE), on a ~100 KB text encoded whole and as ~1 KB chunks (prompt-sized calls). Two texts:
// "english" (prose-like ASCII) and "mixed" (ASCII with Cyrillic, CJK, emoji, whitespace runs and a few invalid
// bytes). Both encoders must give the same ids (checked once per text). Not part of `make test`.
//   tokenizer_bench [--tokenizer models/.cache/tokenizer.model] [--repeats 9] [--kb 100]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "engine/text/tokenizer.h"
#ifdef LLAMA_HAVE_SENTENCEPIECE_REFERENCE
#include "engine/text/sentencepiece_model.h"
#endif

ABSL_FLAG(std::string, tokenizer, "models/.cache/tokenizer.model", "a SentencePiece tokenizer.model");
ABSL_FLAG(int, repeats, 9, "timed runs per case (the median is printed)");
ABSL_FLAG(int, kb, 100, "text size in KB");

namespace llama {
namespace {

std::string MakeText(bool mixed, size_t bytes) {
  static const std::vector<std::string> kWords = {
      "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on", "not",
      "he", "I", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had", "they", "you",
      "were", "their", "one", "all", "we", "can", "her", "has", "there", "been", "if", "more", "when", "will",
      "would", "who", "so", "no", "Once", "upon", "time", "little", "girl", "named", "Lily", "garden", "happy",
      "tokenizer", "server", "throughput", "streaming", "International", "1234", "3.14159", "don't", "it's"};
  static const std::vector<std::string> kExtras = {
      "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82", "\xE4\xBD\xA0\xE5\xA5\xBD\xE4\xB8\x96\xE7\x95\x8C",
      "\xF0\x9F\x98\x80", "\xF0\x9F\xA6\x99\xF0\x9F\xA6\x99", "    ", "\n\n", "\t", "caf\xC3\xA9", "\xFF", "\xC3"};
  std::mt19937 rng(42);
  std::string text;
  while (text.size() < bytes) {
    const int words = 5 + rng() % 15;
    for (int i = 0; i < words; ++i) {
      if (i > 0) text += ' ';
      text += mixed && rng() % 6 == 0 ? kExtras[rng() % kExtras.size()] : kWords[rng() % kWords.size()];
    }
    text += rng() % 4 == 0 ? ".\n" : ". ";
  }
  text.resize(bytes);
  return text;
}

// ~1 KB pieces cut at spaces.
std::vector<std::string> Chunks(const std::string& text) {
  std::vector<std::string> chunks;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = std::min(text.size(), pos + 1024);
    if (end < text.size()) {
      const size_t space = text.find(' ', end);
      end = space == std::string::npos ? text.size() : space;
    }
    chunks.push_back(text.substr(pos, end - pos));
    pos = end;
  }
  return chunks;
}

double MedianMbPerS(int repeats, size_t bytes, const std::function<void()>& run) {
  run();  // warm-up
  std::vector<double> rates;
  for (int r = 0; r < repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    run();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    rates.push_back(bytes / 1e6 / s);
  }
  std::sort(rates.begin(), rates.end());
  return rates[rates.size() / 2];
}

int Main() {
  const std::string path = absl::GetFlag(FLAGS_tokenizer);
  std::ifstream in(path, std::ios::binary);
  std::stringstream model_bytes;
  model_bytes << in.rdbuf();
  auto ours = Tokenizer::FromSerializedModel(model_bytes.str(), path);
  if (!ours.ok()) {
    std::fprintf(stderr, "tokenizer_bench: %s\n", std::string(ours.status().message()).c_str());
    return 1;
  }
#ifdef LLAMA_HAVE_SENTENCEPIECE_REFERENCE
  std::string error;
  std::unique_ptr<SentencePieceModel> reference = SentencePieceModel::FromSerializedProto(model_bytes.str(), &error);
  if (reference == nullptr) std::fprintf(stderr, "tokenizer_bench: no reference: %s\n", error.c_str());
#endif
  const int repeats = absl::GetFlag(FLAGS_repeats);
  const size_t bytes = static_cast<size_t>(absl::GetFlag(FLAGS_kb)) * 1024;
  std::printf("%-8s %-10s %14s %18s %8s\n", "text", "calls", "ours MB/s", "sentencepiece MB/s", "ratio");
  for (const bool mixed : {false, true}) {
    const std::string text = MakeText(mixed, bytes);
    const std::vector<std::string> chunks = Chunks(text);
    for (const bool whole : {true, false}) {
      size_t sink = 0;
      const double ours_rate = MedianMbPerS(repeats, bytes, [&] {
        if (whole) {
          sink += (*ours)->Encode(text).size();
        } else {
          for (const std::string& c : chunks) sink += (*ours)->Encode(c).size();
        }
      });
      double ref_rate = 0;
#ifdef LLAMA_HAVE_SENTENCEPIECE_REFERENCE
      if (reference != nullptr) {
        std::vector<int> ids;
        reference->Encode(text, &ids);
        const std::vector<int32_t> got = (*ours)->Encode(text);
        if (std::vector<int>(got.begin(), got.end()) != ids) {
          std::fprintf(stderr, "tokenizer_bench: the encoders disagree on the %s text\n", mixed ? "mixed" : "english");
          return 1;
        }
        ref_rate = MedianMbPerS(repeats, bytes, [&] {
          if (whole) {
            reference->Encode(text, &ids);
            sink += ids.size();
          } else {
            for (const std::string& c : chunks) {
              reference->Encode(c, &ids);
              sink += ids.size();
            }
          }
        });
      }
#endif
      char calls[32];
      std::snprintf(calls, sizeof(calls), whole ? "1 x %zuKB" : "%zu x 1KB", whole ? bytes / 1024 : chunks.size());
      std::printf("%-8s %-10s %14.2f %18.2f %8.2f\n", mixed ? "mixed" : "english", calls, ours_rate, ref_rate,
                  ref_rate > 0 ? ours_rate / ref_rate : 0.0);
      if (sink == 1) std::printf(" ");  // keeps the work observable
    }
  }
  return 0;
}

}  // namespace
}  // namespace llama

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Encode throughput of our tokenizer and libsentencepiece (MB/s, medians).");
  absl::ParseCommandLine(argc, argv);
  return llama::Main();
}
