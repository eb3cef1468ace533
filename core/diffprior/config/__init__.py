"""Run configs: the bases plugins subclass, the run options, validation against the
plugin registry, whole-config checks, and config files with ``--set`` overrides. No torch.
"""
