"""Optional integrations with other frameworks; each one is an extra and the core never imports it.

- `fednot.integrations.flower` (``pip install 'fednot[flower]'``): run NoT and the baselines on a
  Flower deployment or in Flower's simulation runtime.
"""
