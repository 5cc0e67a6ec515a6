"""Centralized unlearning baselines: one data holder, the NoT paper's Table 2."""
