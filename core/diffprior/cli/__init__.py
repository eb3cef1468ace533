"""The ``diffprior`` command line: the entry point, the Command API plugins register
commands with, and the core's own commands. Imports no torch.
"""
