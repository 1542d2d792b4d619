#include "engine/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"

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

float CounterUniform(uint64_t seed, int64_t step) {
  // SplitMix64 finaliser over a state that mixes the seed and the step; two rounds so that nearby
  // (seed, step) pairs give unrelated values.
  auto mix = [](uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  const uint64_t z = mix(mix(seed) ^ static_cast<uint64_t>(step));
  // Top 24 bits → a float in [0, 1) exactly representable (never rounds up to 1).
  return static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
}

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

}  // namespace

int32_t SampleToken(absl::Span<float> logits, const SamplingParams& params, uint64_t seed, int64_t step,
                    absl::Span<const int32_t> penalty_tokens) {
  ApplyRepetitionPenalty(logits, params.repetition_penalty, penalty_tokens);
  const int vocab = static_cast<int>(logits.size());
  if (params.temperature == 0.0f || params.top_k == 1) return ArgMax(logits);

  // Softmax of logits / T, max-subtracted for stability.
  const float max_logit = logits[ArgMax(logits)];
  const float inv_t = 1.0f / params.temperature;
  std::vector<std::pair<float, int32_t>> probs(vocab);  // (probability, id)
  double sum = 0.0;
  for (int i = 0; i < vocab; ++i) {
    const float p = std::exp((logits[i] - max_logit) * inv_t);
    probs[i] = {p, i};
    sum += p;
  }
  // Descending probability, ties by ascending id, so the kept set is deterministic.
  auto by_prob = [](const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  int kept = vocab;
  if (params.top_k > 0 && params.top_k < vocab) {
    kept = params.top_k;
    std::partial_sort(probs.begin(), probs.begin() + kept, probs.end(), by_prob);
  } else if (params.top_p < 1.0f) {
    std::sort(probs.begin(), probs.end(), by_prob);
  }
  if (kept < vocab) {
    sum = 0.0;
    for (int i = 0; i < kept; ++i) sum += probs[i].first;
  }
  if (params.top_p < 1.0f) {
    // probs[0, kept) is sorted here (partial_sort or sort above). Smallest prefix whose probability reaches top_p (at least one token).
    const double target = params.top_p * sum;
    double acc = 0.0;
    int n = 0;
    while (n < kept) {
      acc += probs[n].first;
      ++n;
      if (acc >= target) break;
    }
    kept = n;
    sum = acc;
  }
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
