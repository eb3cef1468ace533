"""Runs: what happens between a validated config and the files it leaves behind.

runner (build the prior, terms and variable from a config, solve it in batches), directories
(a run's folder: claimed atomically, interrupts deferred while it is written), outputs (the
files a run writes), sharding (a run split across processes or machines, and merged back)
and distributed (the torchrun world those processes share).
"""
