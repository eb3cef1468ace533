"""Travelling-salesman tours with a diffusion prior over tour images (Graikos et al. 2022, §TSP).

:mod:`diffprior_tsp.plugin` (the hook module) imports no torch; the rest imports it when used.
"""

__version__ = "0.1.0"
