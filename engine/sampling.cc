#include "engine/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/counter_rng.h"

namespace llama {

absl::Status SamplingParams::Validate() const {
  if (!std::isfinite(temperature) || temperature < 0.0f) {
    return absl::InvalidArgumentError(absl::StrCat("temperature must be finite and >= 0, got ", temperature));
  }
  if (!std::isfinite(top_p) || top_p <= 0.0f || top_p > 1.0f) {
    return absl::InvalidArgumentError(absl::StrCat("top_p must be in (0, 1], got ", top_p));
  }
  if (top_k < 0) return absl::InvalidArgumentError(absl::StrCat("top_k must be >= 0, got ", top_k));
  if (!std::isfinite(repetition_penalty) || repetition_penalty <= 0.0f) {
    return absl::InvalidArgumentError(
        absl::StrCat("repetition_penalty must be finite and > 0, got ", repetition_penalty));
  }
  return absl::OkStatus();
}

float CounterUniform(uint64_t seed, int64_t step) { return CounterUniformOf(seed, step); }

namespace {

void ApplyRepetitionPenalty(absl::Span<float> logits, float penalty, absl::Span<const int32_t> tokens) {
  if (penalty == 1.0f) return;
  for (int32_t id : tokens) {
    if (id < 0 || id >= static_cast<int32_t>(logits.size())) continue;
    float& l = logits[id];
    l = l > 0.0f ? l / penalty : l * penalty;
  }
}

int32_t ArgMax(absl::Span<const float> logits) {
  int32_t best = 0;
  for (int32_t i = 1; i < static_cast<int32_t>(logits.size()); ++i) {
    if (logits[i] > logits[best]) best = i;  // strict: the lowest id wins ties
  }
  return best;
}

// Descending probability, ties by ascending id, so the kept set is deterministic.
bool ByProbability(const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
  return a.first > b.first || (a.first == b.first && a.second < b.second);
}

// probs = exp((logits - max) / T) with ids, in id order; returns their sum.
double Softmax(absl::Span<const float> logits, float temperature, std::vector<std::pair<float, int32_t>>* probs) {
  const float max_logit = logits[ArgMax(logits)];
  const float inv_t = 1.0f / temperature;
  probs->resize(logits.size());
  double sum = 0.0;
  for (size_t i = 0; i < logits.size(); ++i) {
    const float p = std::exp((logits[i] - max_logit) * inv_t);
    (*probs)[i] = {p, static_cast<int32_t>(i)};
    sum += p;
  }
  return sum;
}

// Moves the k most probable to the front, sorted; *sum becomes their mass. Returns k.
int KeepTopK(int k, std::vector<std::pair<float, int32_t>>* probs, double* sum) {
  std::partial_sort(probs->begin(), probs->begin() + k, probs->end(), ByProbability);
  *sum = 0.0;
  for (int i = 0; i < k; ++i) *sum += (*probs)[i].first;
  return k;
}

// Of the first `kept` entries (sorted already when top-k cut them), keeps the smallest most-probable prefix whose
// mass reaches top_p of *sum (at least one); *sum becomes its mass. Returns its length.
int KeepTopP(float top_p, int kept, std::vector<std::pair<float, int32_t>>* probs, double* sum) {
  auto begin = probs->begin();
  if (kept == static_cast<int>(probs->size())) {
    // Only entries with probability >= (1 - top_p) / n can be in the nucleus: the others hold less than 1 - top_p
    // in total, so the sorted prefix reaches top_p before it gets to them. Sorting just these candidates gives
    // the same prefix as sorting everything, at a fraction of the cost (sorting 32000 ids takes ~1 ms).
    const float cutoff = static_cast<float>((1.0 - top_p) * *sum / kept);
    auto tail = std::partition(begin, probs->end(), [&](const auto& p) { return p.first >= cutoff; });
    std::sort(begin, tail, ByProbability);
    kept = static_cast<int>(tail - begin);
  }
  const double target = top_p * *sum;
  double acc = 0.0;
  int n = 0;
  while (n < kept) {
    acc += (*probs)[n++].first;
    if (acc >= target) break;
  }
  *sum = acc;
  return std::max(n, 1);
}

}  // namespace

int32_t SampleToken(absl::Span<float> logits, const SamplingParams& params, uint64_t seed, int64_t step,
                    absl::Span<const int32_t> penalty_tokens) {
  ApplyRepetitionPenalty(logits, params.repetition_penalty, penalty_tokens);
  if (params.temperature == 0.0f || params.top_k == 1) return ArgMax(logits);
  std::vector<std::pair<float, int32_t>> probs;  // (unnormalised probability, id)
  double sum = Softmax(logits, params.temperature, &probs);
  // probs[0, kept) are the candidates; sorted by KeepTopK / KeepTopP when they cut.
  int kept = static_cast<int>(probs.size());
  if (params.top_k > 0 && params.top_k < kept) kept = KeepTopK(params.top_k, &probs, &sum);
  if (params.top_p < 1.0f) kept = KeepTopP(params.top_p, kept, &probs, &sum);
  // Inverse CDF over the kept (renormalised) set.
  const double u = static_cast<double>(CounterUniform(seed, step)) * sum;
  double cdf = 0.0;
  for (int i = 0; i < kept; ++i) {
    cdf += probs[i].first;
    if (u < cdf) return probs[i].second;
  }
  return probs[kept - 1].second;  // rounding: u landed at the very top
}

}  // namespace llama
