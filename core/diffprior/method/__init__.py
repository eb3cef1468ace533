"""The method (Graikos et al. 2022): the free energy and everything it is made of.

priors (ε_θ and its data range), noise (the DDPM schedule), variables (η → x), terms
(log c(x, y)), schedules (any scalar against the step), clipping (each term's gradient
policy), rng (per-sample noise) and optimizer (the loop that minimises F).
"""
