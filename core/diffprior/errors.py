"""The errors diffprior raises on purpose, in one public module (no torch, no pydantic).

==================  ==========================================================  =========
error               raised when                                                  CLI exit
==================  ==========================================================  =========
ConfigError         a config file, override, option or built object is invalid  2
UsageError          bad input on the command line                                2
PluginError         a plugin cannot be loaded (strict plugin mode only)          2
NonFiniteError      a loss or the gradient became NaN/inf during a run           1
==================  ==========================================================  =========

Plugins raise :class:`ConfigError` (from ``build``) and :class:`UsageError` (from commands)
so the CLI prints one line without a traceback.
"""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """A config (file, override or model) is invalid. The CLI exits with code 2."""

    def __init__(self, message: str, *, source: str | None = None):
        self.source = source
        super().__init__(f"{source}: {message}" if source else message)


class UsageError(ValueError):
    """Bad input on the command line: exit code 2, no traceback."""


class PluginError(RuntimeError):
    """A plugin could not be loaded or registered, raised in strict mode."""


class PluginWarning(UserWarning):
    """A plugin could not be loaded or registered; everything else keeps working."""


class NonFiniteError(FloatingPointError):
    """A loss or the gradient became NaN/inf; the message names the term, step and samples.

    ``partial`` holds the :class:`diffprior.Result` of the steps before it (set by
    :func:`diffprior.optimize`)."""

    partial: Any = None


def unknown_name_message(kind: str, name: str, known) -> str:
    """``unknown term type 'simetry' (did you mean 'symmetry'?); available: ...``"""
    import difflib

    known = sorted(known)
    close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    listing = ", ".join(repr(k) for k in known) or "none installed"
    return f"unknown {kind} type {name!r}{hint}; available: {listing}"
