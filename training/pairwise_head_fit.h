// Fitting a reward model's scalar head with the Llama 2 pairwise ranking loss on frozen features (the pairwise
// objective of train-rm-head): standardise, choose λ by grouped k-fold cross-validation on held-in-fold ranking loss,
// fit w by Newton (training/pairwise_ranking.h), fold the standardisation back into score.weight, then fit
// score.bias on labeled rows with w held fixed.
//
// Why the bias is fitted that way: b cancels in r_chosen − r_rejected, so the ranking loss says nothing about it,
// yet serving compares sigmoid(w · h + b) with an absolute threshold (0.15). A bias borrowed from a pointwise fit
// belongs to another w (other direction, other scale) and means nothing here. Fitting b alone by maximum likelihood
// on labeled safe/unsafe rows makes sigmoid(r) a calibrated P(safe) on those rows while every pairwise ranking, and
// the scale of w the ranking loss chose (σ(r_chosen − r_rejected) stays the fitted preference probability), is kept
// exactly. A Platt fit of a scale as well would change that scale and diverges when the rows are separable.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "training/reward_head_fit.h"

namespace llama {

struct PairwiseHeadData {
  absl::Span<const float> chosen;            // [n, dim] features of each pair's preferred answer
  absl::Span<const float> rejected;          // [n, dim] features of its other answer
  absl::Span<const double> margins;          // [n] m ≥ 0 of each pair
  absl::Span<const uint64_t> groups;         // [n] or empty: pair i's fold is groups[i] % num_folds (else i % folds)
  absl::Span<const float> calibration;       // [m, dim] labeled rows for the bias
  absl::Span<const int> calibration_labels;  // [m] in {0, 1}, both present
};

// The head on raw features: weight = w / σ (w fitted on standardised differences; μ cancels in a difference), bias
// from the calibration rows. σ is taken over every chosen and rejected row. cv_accuracy / cv_loss: those of the λ
// chosen (the smallest mean held-in-fold loss; ties keep the earlier λ of the grid).
absl::StatusOr<RewardHead> FitPairwiseRewardHead(const PairwiseHeadData& data, int dim,
                                                 const RewardHeadFitOptions& options);

}  // namespace llama
