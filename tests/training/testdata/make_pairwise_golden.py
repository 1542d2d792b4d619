#!/usr/bin/env python3
"""Golden data for tests/training/pairwise_ranking_test.cc, from an independent numpy reference.

Two fixed problems, both solved in float64 numpy by Newton's method (np.linalg.solve, step halving on the objective,
iterated until the gradient norm is < 1e-13), written from the math, not from the project's code:

- "ranking": the Llama 2 binary ranking loss on given pair differences δ (60 pairs, 5 features, noisy so the pairs
  are not separable, margins from the paper's small table {0, 1/3, 2/3, 1}):
  (1/n) Σ log(1 + exp(−(w·δ_i − m_i))) + (λ/2)||w||² → weights, objective, ranking accuracy (Δ > 0, ties ½), loss.
- "head": the whole pairwise head fit on raw features (48 pairs, 4 features on very different scales and offsets,
  groups of 4 pairs per ask): σ per feature over all chosen and rejected rows (population std), standardised
  differences, λ from the grid by 4-fold cross-validation (fold = group % 4) on held-in-fold ranking loss, the fit
  folded back to raw weights w/σ (σ is written too), and the bias alone fitted by maximum likelihood on 40 labeled calibration rows
  (found by bisection on the derivative, to 1e-15) → cv loss/accuracy per λ, the λ chosen, raw weights, bias.

Run: /usr/bin/python3 tests/training/testdata/make_pairwise_golden.py (deterministic; writes pairwise_golden.json).
"""
import json
import os

import numpy as np


def softplus(x):
    return np.logaddexp(0.0, x)


def sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def ranking_objective(w, d, m, l2):
    return np.mean(softplus(-(d @ w - m))) + 0.5 * l2 * w @ w


def fit_ranking(d, m, l2):
    n, k = d.shape
    w = np.zeros(k)
    for _ in range(200):
        s = sigmoid(m - d @ w)
        g = -(d.T @ s) / n + l2 * w
        if np.linalg.norm(g) < 1e-13:
            break
        h = (d.T * (s * (1.0 - s))) @ d / n + l2 * np.eye(k)
        step = np.linalg.solve(h, g)
        t, f0 = 1.0, ranking_objective(w, d, m, l2)
        while ranking_objective(w - t * step, d, m, l2) > f0 and t > 1e-12:
            t *= 0.5
        w = w - t * step
    return w


def accuracy(diffs):
    return float(np.mean(np.where(diffs > 0, 1.0, np.where(diffs == 0, 0.5, 0.0))))


def fit_intercept(scores, labels):
    y = np.where(labels == 1, 1.0, -1.0)

    def dloss(b):  # derivative of the mean log loss in b: increasing in b
        return np.mean(-y * sigmoid(-y * (scores + b)))

    lo, hi = -1e3, 1e3
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if dloss(mid) > 0:
            hi = mid
        else:
            lo = mid
        if hi - lo < 1e-15:
            break
    return 0.5 * (lo + hi)


def ranking_problem(rng):
    n, k, l2 = 60, 5, 0.05
    d = rng.normal(size=(n, k)).astype(np.float32)
    true_w = np.array([1.2, -0.8, 0.5, 0.0, 2.0])
    m = rng.choice([0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0], size=n)
    # Flip the sign of pairs whose noisy utility says the "rejected" one wins, then flip a few back: not separable.
    u = d.astype(np.float64) @ true_w + rng.normal(scale=1.5, size=n)
    d = np.where((u < 0)[:, None], -d, d).astype(np.float32)
    d64 = d.astype(np.float64)
    w = fit_ranking(d64, m, l2)
    diffs = d64 @ w
    return {
        "n": n, "d": k, "l2": l2,
        "diffs": [float(v) for v in d.reshape(-1)], "margins": [float(v) for v in m],
        "weights": [float(v) for v in w], "objective": float(ranking_objective(w, d64, m, l2)),
        "accuracy": accuracy(diffs), "loss": float(np.mean(softplus(-(diffs - m)))),
    }


def head_problem(rng):
    n, k, folds = 48, 4, 4
    grid = [1e-3, 1e-2, 1e-1, 1.0]
    scale = np.array([100.0, 0.01, 1.0, 5.0])
    offset = np.array([1000.0, -3.0, 0.0, 40.0])
    true_w = np.array([1.0, -1.0, 0.7, 0.0])
    base = rng.normal(size=(n, k))
    step = rng.normal(size=(n, k))
    better = (step @ true_w + rng.normal(scale=0.8, size=n)) > 0
    step = np.where(better[:, None], step, -step)  # chosen = base + step, mostly along true_w
    chosen = (offset + scale * (base + step)).astype(np.float32)
    rejected = (offset + scale * base).astype(np.float32)
    margins = rng.choice([0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0], size=n)
    groups = np.arange(n) // 4 * 7 + 3  # 12 asks, 4 pairs each
    cal_z = rng.normal(size=(40, k))
    cal_labels = ((cal_z @ true_w + rng.normal(scale=0.7, size=40)) > 0.3).astype(np.int64)
    calibration = (offset + scale * cal_z).astype(np.float32)

    rows = np.vstack([chosen, rejected]).astype(np.float64)
    sigma = rows.std(axis=0)
    dz = (chosen.astype(np.float64) - rejected.astype(np.float64)) / sigma
    fold = groups % folds
    cv = []
    for l2 in grid:
        held = np.zeros(n)
        for f in range(folds):
            w = fit_ranking(dz[fold != f], margins[fold != f], l2)
            held[fold == f] = dz[fold == f] @ w
        cv.append({"l2": l2, "loss": float(np.mean(softplus(-(held - margins)))), "accuracy": accuracy(held)})
    best = min(range(len(grid)), key=lambda i: (cv[i]["loss"], i))
    w = fit_ranking(dz, margins, grid[best]) / sigma
    bias = fit_intercept(calibration.astype(np.float64) @ w, cal_labels)
    return {
        "n": n, "d": k, "num_folds": folds, "l2_grid": grid,
        "chosen": [float(v) for v in chosen.reshape(-1)], "rejected": [float(v) for v in rejected.reshape(-1)],
        "margins": [float(v) for v in margins], "groups": [int(v) for v in groups],
        "calibration": [float(v) for v in calibration.reshape(-1)], "calibration_labels": [int(v) for v in cal_labels],
        "cv": cv, "l2": grid[best], "weight": [float(v) for v in w], "bias": float(bias),
        "sigma": [float(v) for v in sigma],
    }


def main():
    rng = np.random.default_rng(20240613)
    out = {"ranking": ranking_problem(rng), "head": head_problem(rng)}
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pairwise_golden.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print(path, "ranking w", out["ranking"]["weights"], "acc", out["ranking"]["accuracy"])
    print("head cv", out["head"]["cv"], "l2", out["head"]["l2"], "w", out["head"]["weight"], "b", out["head"]["bias"])


if __name__ == "__main__":
    main()
