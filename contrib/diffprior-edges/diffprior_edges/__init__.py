"""diffprior-edges: total-variation smoothness (``tv``) and edge alignment (``edges``) terms.

The hook module :mod:`diffprior_edges.plugin` holds only config models; the torch code is
in :mod:`diffprior_edges.terms`, imported when a term is built.
"""

__version__ = "0.1.0"
