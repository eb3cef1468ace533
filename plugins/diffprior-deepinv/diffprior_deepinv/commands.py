"""``diffprior deepinv simulate``: measurements from a folder of clean images.

Argparse wiring only at import; torch, deepinv and PIL are imported when the command runs.
"""

from __future__ import annotations

from diffprior import Command, UsageError, subcommands


def _configure_simulate(parser):
    from .operators import FILTERS, KERNELS, NOISE_MODELS

    parser.add_argument("images", help="folder of clean images (.png or .npy in [0, 1], all of one shape)")
    parser.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    parser.add_argument("--operator", required=True, help="inpainting | downsampling | blur | compressed-sensing | denoising")
    parser.add_argument("--mask", help="inpainting: mask file (1 = observed)")
    parser.add_argument("--ratio", type=float, help="inpainting: fraction of pixels observed (random, --seed)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the operator's random parts (and of the noise: seed + 1)")
    parser.add_argument("--factor", type=int, default=2, help="downsampling factor")
    parser.add_argument("--filter", choices=FILTERS, default="bicubic", help="downsampling filter")
    parser.add_argument("--kernel", choices=KERNELS, default="gaussian", help="blur kernel")
    parser.add_argument("--width", type=float, default=1.0, help="blur: Gaussian std or box size in pixels")
    parser.add_argument("--measurements", type=int, help="compressed sensing: number of projections")
    parser.add_argument("--noise", choices=NOISE_MODELS, default="gaussian")
    parser.add_argument("--sigma", type=float, default=0.05, help="Gaussian noise std on the [0, 1] scale")
    parser.add_argument("--gain", type=float, default=1.0 / 255, help="Poisson gain")


def _spec_from_args(args):
    from pydantic import ValidationError

    from .operators import OperatorSpec

    fields = {k: getattr(args, k) for k in ("operator", "mask", "ratio", "seed", "factor", "filter", "kernel",
                                             "width", "measurements", "noise", "sigma", "gain")}
    try:
        return OperatorSpec(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise UsageError(f"{'--' + where + ': ' if where else ''}{err['msg'].removeprefix('Value error, ')}") from None


def _run_simulate(args) -> int:
    from .simulate import simulate

    spec = _spec_from_args(args)  # bad operator or parameters: one line, before anything is read or written
    simulate(args.images, args.out, spec)
    return 0


_configure, _run = subcommands("deepinv", {
    "simulate": ("measurements from a folder of clean images through a deepinv operator and noise",
                 _configure_simulate, _run_simulate),
})

DEEPINV_COMMAND = Command("deepinv", "imaging inverse problems with deepinv operators (simulate)", _configure, _run)
