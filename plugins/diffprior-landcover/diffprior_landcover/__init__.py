"""Land-cover segmentation with a diffusion prior over label maps (Graikos et al. 2022, §4.3).

:mod:`diffprior_landcover.plugin` (the hook module) imports no torch; the rest imports it when used.
"""

__version__ = "0.1.0"
