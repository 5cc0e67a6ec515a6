"""The benchmark pipeline: a run's experiments, cells, metrics, summaries, statements and report.

Layers: `experiment` (one seed: data, pre-training, a method's unlearning, evaluation) over
`scenarios` and `evaluation`; `cells` and `runner` (every method on every seed, resumable); then
`results`, `comparison`, `trajectory`, `stats`, `paired` and `statements` (summaries and tests);
`tables`, `plots`, `caveats` and `report` (what a reader sees).
"""
