#!/usr/bin/env python3
"""Golden data for tests/training/logistic_regression_test.cc, from an independent numpy reference.

A small fixed problem (60 examples, 4 features, noisy labels so it is not separable); the reference minimises the
same objective, (1/n) Σ log(1 + exp(-y (w·x + b))) + (λ/2)||w||², with numpy (IRLS/Newton solved by
np.linalg.solve, iterated until the gradient norm is < 1e-13), and computes ROC AUC by counting all
positive/negative pairs. Run: /usr/bin/python3 tests/training/testdata/make_logreg_golden.py
"""
import json
import os

import numpy as np

rng = np.random.default_rng(12345)
n, d, l2 = 60, 4, 0.05
x = rng.normal(size=(n, d)).astype(np.float32)
true_w = np.array([1.5, -2.0, 0.5, 0.0])
logits = x.astype(np.float64) @ true_w + 0.3 + rng.normal(scale=1.0, size=n)
labels = (logits > 0).astype(np.int64)

xt = np.hstack([x.astype(np.float64), np.ones((n, 1))])
y = np.where(labels == 1, 1.0, -1.0)
reg = np.diag([l2] * d + [0.0])
theta = np.zeros(d + 1)
for _ in range(100):
    m = y * (xt @ theta)
    s = 1.0 / (1.0 + np.exp(m))  # sigmoid(-m)
    g = -(xt.T @ (y * s)) / n + reg @ theta
    if np.linalg.norm(g) < 1e-13:
        break
    h = (xt.T * (s * (1 - s))) @ xt / n + reg
    theta -= np.linalg.solve(h, g)
objective = np.mean(np.logaddexp(0.0, -y * (xt @ theta))) + 0.5 * l2 * np.sum(theta[:d] ** 2)

scores = xt @ theta
pos, neg = scores[labels == 1], scores[labels == 0]
auc = (np.sum(pos[:, None] > neg[None, :]) + 0.5 * np.sum(pos[:, None] == neg[None, :])) / (len(pos) * len(neg))
acc = np.mean((scores >= 0) == (labels == 1))

out = {
    "n": n, "d": d, "l2": l2,
    "features": [float(v) for v in x.reshape(-1)],
    "labels": [int(v) for v in labels],
    "weights": [float(v) for v in theta[:d]], "bias": float(theta[d]),
    "objective": float(objective), "auc": float(auc), "accuracy": float(acc),
}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "logreg_golden.json")
with open(path, "w") as f:
    json.dump(out, f, indent=1)
print(path, out["weights"], out["bias"], out["auc"], out["accuracy"])
