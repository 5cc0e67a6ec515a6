"""The ``fednot`` command line."""
