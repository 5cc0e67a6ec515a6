"""Ablations and analyses of why NoT works (the NoT paper's Section 6), as figures and reports.

Each analysis is a function ``(study: Study) -> Path`` that writes a Markdown file, its figures
(PNG) and its data (JSON) into ``study.out`` and returns the Markdown's path. The CLI exposes them
as ``fednot ablate ...`` and ``fednot analyze ...``; ``fednot report`` gathers a folder's
results into one shareable file.
"""
