"""Image terms: log c(x) per sample for images x in the prior's data range, [B, C, H, W].

Each term's row i depends on x[i] alone (the per-sample contract of diffprior); random
augmentations are drawn once per call from the term's own generator and shared by the batch.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch.nn import functional as F

from diffprior import ConfigError
from diffprior import MaskedGaussian, Term, check_image_shape

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _to_unit(x: torch.Tensor, data_range) -> torch.Tensor:
    lo, hi = data_range
    return (x - lo) / (hi - lo)


def _frozen(module: torch.nn.Module) -> torch.nn.Module:
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


# --------------------------------------------------------------------------- symmetry
class SymmetryTerm(Term):
    """log c = −MSE(x, mirror(x)); vertical axis: left ↔ right, horizontal: top ↔ bottom."""

    def __init__(self, config, ctx):
        super().__init__(config, ctx)
        check_image_shape(ctx, "symmetry")
        self.dim = -1 if config.axis == "vertical" else -2

    def asymmetry(self, x):
        return (x - x.flip(self.dim)).pow(2).flatten(1).mean(1)

    def log_c(self, x):
        return -self.asymmetry(x)

    def metrics(self, x):
        return {"mse": self.asymmetry(x)}


# --------------------------------------------------------------------------- intensity
class IntensityTerm(Term):
    """Mean ink m in [0, 1]: −m (thin) / +m (thick), or a one-sided square toward ``level``."""

    def __init__(self, config, ctx):
        super().__init__(config, ctx)
        check_image_shape(ctx, "intensity")
        self.data_range = ctx.prior.data_range
        self.sign = -1.0 if config.mode == "thin" else 1.0
        self.level = config.level

    def ink(self, x):
        return _to_unit(x, self.data_range).flatten(1).mean(1)

    def log_c(self, x):
        m = self.ink(x)
        if self.level is None:
            return self.sign * m
        excess = (self.sign * (self.level - m)).clamp_min(0)  # how far on the wrong side of the level
        return -excess.pow(2)

    def metrics(self, x):
        return {"mean_ink": self.ink(x)}


# --------------------------------------------------------------------------- network inputs
class NetworkInput:
    """Maps x in the data range to what a network expects: [0, 1], channels, size, normalisation."""

    def __init__(self, data_range, in_chans: int, input_size, mean, std, device):
        self.data_range = data_range
        self.in_chans = in_chans
        self.input_size = input_size
        mean, std = list(mean), list(std)
        if len(mean) == 1:
            mean = mean * in_chans
        if len(std) == 1:
            std = std * in_chans
        if len(mean) != in_chans or len(std) != in_chans:
            raise ConfigError(f"terms: mean/std have {len(mean)}/{len(std)} values; the network takes {in_chans} channels")
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1)

    def unit(self, x: torch.Tensor) -> torch.Tensor:
        """[0, 1] images with the network's channels and size (before normalisation)."""
        x = _to_unit(x, self.data_range)
        if x.shape[1] != self.in_chans:
            if x.shape[1] == 1:
                x = x.expand(-1, self.in_chans, -1, -1)
            elif self.in_chans == 1:
                x = x.mean(1, keepdim=True)
            else:
                raise ConfigError(f"terms: images have {x.shape[1]} channels; the network takes {self.in_chans}")
        if self.input_size and tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        return x

    def normalise(self, x01: torch.Tensor) -> torch.Tensor:
        return (x01 - self.mean) / self.std

    def __call__(self, x):
        return self.normalise(self.unit(x))


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Depthwise Gaussian blur with reflect padding (identity for σ < 0.1)."""
    if sigma < 0.1:
        return x
    radius = min(int(math.ceil(3 * sigma)), (min(x.shape[-2:]) - 1) // 2)
    coords = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (coords / sigma) ** 2)
    kernel = kernel / kernel.sum()
    C = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(C, 1, 1, -1), groups=C)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(C, 1, -1, 1), groups=C)


class Augmenter:
    """``copies`` random views (flip, brightness, blur) per call, shared by the batch."""

    def __init__(self, config):
        self.config = config
        self.gen = torch.Generator().manual_seed(config.seed)

    def views(self, x01: torch.Tensor) -> list[torch.Tensor]:
        c, views = self.config, []
        for _ in range(c.copies):
            flip, bright, blur = torch.rand(3, generator=self.gen).tolist()
            v = x01.flip(-1) if c.flip and flip < 0.5 else x01
            v = v * (1 + c.brightness * (2 * bright - 1))
            v = gaussian_blur(v, c.blur * blur)
            if c.shift:
                dy, dx = torch.randint(-c.shift, c.shift + 1, (2,), generator=self.gen).tolist()
                v = torch.roll(v, shifts=(dy, dx), dims=(-2, -1))
            if c.noise:
                v = v + c.noise * torch.randn(v.shape[1:], generator=self.gen).to(v)
            views.append(v)
        return views


class Denoiser:
    """One-step denoised estimates x̂₀(x_t) of the prior, with t and ε drawn per call from the
    term's own generator and shared by the batch (sample i's estimate depends on x[i] alone)."""

    def __init__(self, config, prior):
        self.config = config
        self.prior = prior
        self.gen = torch.Generator().manual_seed(config.seed)

    def estimates(self, x: torch.Tensor) -> list[torch.Tensor]:
        c, prior = self.config, self.prior
        lo, hi = prior.data_range
        out = []
        for _ in range(c.copies):
            t = int(torch.randint(c.t[0], c.t[1] + 1, (1,), generator=self.gen))
            t = min(max(t, 0), prior.T - 1)
            eps = torch.randn(x.shape[1:], generator=self.gen).to(x)
            tt = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
            x_t = prior.q_sample(x, tt, eps)
            if c.jacobian:
                x0 = prior.predict_x0(x_t, tt)
            else:
                with torch.no_grad():
                    x0 = prior.predict_x0(x_t, tt)
                x0 = x + (x0 - x).detach()  # straight-through: the classifier's gradient at x̂₀ goes to x
            out.append(x0.clamp(lo, hi))
        return out


# --------------------------------------------------------------------------- classifier
def _load_timm(config, device):
    try:
        import timm
    except ImportError:
        raise ConfigError("terms: timm classifiers need timm: pip install 'diffprior-images[timm]'") from None
    in_chans = config.in_chans or 3
    model = timm.create_model(config.timm, pretrained=False, num_classes=config.num_classes, in_chans=in_chans)
    path = Path(config.checkpoint)
    if path.suffix == ".safetensors":
        from diffprior import load_tensors

        state = load_tensors(path, what="terms: classifier checkpoint")
    else:
        from diffprior import load_torch_weights

        state = load_torch_weights(path, what="terms: classifier checkpoint")
        state = state.get("state_dict", state.get("model", state)) if isinstance(state, dict) else state
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(f"terms: checkpoint {path} does not fit timm model {config.timm!r} "
                          f"with num_classes={config.num_classes}, in_chans={in_chans}: {first}") from None
    size = config.input_size or 224
    mean = config.mean or (IMAGENET_MEAN if in_chans == 3 else (0.5,) * in_chans)
    std = config.std or (IMAGENET_STD if in_chans == 3 else (0.5,) * in_chans)
    return model, config.num_classes, (in_chans, size, mean, std)


def _load_named(config, task: str, device):
    from .bundled import get_model_spec

    spec = get_model_spec(config.model, task)
    model = spec.build(device)
    size = getattr(config, "input_size", None) or spec.input_size
    mean = getattr(config, "mean", None) or spec.mean
    std = getattr(config, "std", None) or spec.std
    return model, spec.num_classes, (spec.in_chans, size, mean, std)


class ClassifierTerm(Term):
    """Single-label: log softmax[target]; multi-label: Σ Bernoulli log-likelihoods of the
    selected attributes. Averaged over augmented views when ``augment`` is set, and scored on
    the prior's denoised estimates x̂₀(x_t) when ``denoised`` is set. ``metrics`` score x itself."""

    def __init__(self, config, ctx):
        super().__init__(config, ctx)
        check_image_shape(ctx, "classifier")
        loader = _load_timm if config.timm else lambda c, d: _load_named(c, "classify", d)
        model, _, input_spec = loader(config, ctx.device)
        self.model = _frozen(model.to(ctx.device))
        self.input = NetworkInput(ctx.prior.data_range, *input_spec, ctx.device)
        self.augmenter = Augmenter(config.augment) if config.augment else None
        self.denoiser = Denoiser(config.denoised, ctx.prior) if config.denoised else None
        self.target = config.target
        if config.targets is not None:
            attributes = config.attributes if config.attributes is not None else range(len(config.targets))
            self.attributes = torch.tensor(list(attributes), dtype=torch.long, device=ctx.device)
            self.targets = torch.tensor(config.targets, dtype=torch.float32, device=ctx.device)[self.attributes]

    def _views(self, x):
        views = []
        for estimate in self.denoiser.estimates(x) if self.denoiser else [x]:
            x01 = self.input.unit(estimate)
            views += self.augmenter.views(x01) if self.augmenter else [x01]
        return [self.input.normalise(v) for v in views]

    def _score(self, logits):
        if self.target is not None:
            return logits.log_softmax(1)[:, self.target]
        z = logits[:, self.attributes]
        return -F.binary_cross_entropy_with_logits(z, self.targets.expand_as(z), reduction="none").sum(1)

    def log_c(self, x):
        views = self._views(x)
        return torch.stack([self._score(self.model(v)) for v in views]).mean(0)

    @torch.no_grad()
    def metrics(self, x):
        logits = self.model(self.input(x))
        if self.target is not None:
            p = logits.softmax(1)
            return {"p_target": p[:, self.target], "hit": (p.argmax(1) == self.target).float()}
        predicted = (logits[:, self.attributes] > 0).float()
        return {"attributes_hit": (predicted == self.targets).float().mean(1)}


# --------------------------------------------------------------------------- mask and segmentation
def _digit(ref, size: int) -> tuple[torch.Tensor, int]:
    from .digits import mnist_digits

    images, labels = mnist_digits(ref.split, size=size)
    return images[ref.index], int(labels[ref.index])


def _tensor_from_file(path: Path, key: str) -> torch.Tensor:
    from diffprior import load_tensors

    tensors = load_tensors(path, what="terms: file")
    if key not in tensors:
        raise ConfigError(f"terms: {path} has no {key!r} tensor (it has: {', '.join(sorted(tensors)) or 'none'})")
    return tensors[key]


def region_mask(region: str, shape) -> torch.Tensor:
    """1 on the known part of a [C, H, W] image for a named region."""
    C, H, W = shape
    mask = torch.zeros(C, H, W)
    h, w = H // 2, W // 2
    parts = {
        "top-half": (slice(0, h), slice(None)),
        "bottom-half": (slice(h, None), slice(None)),
        "left-half": (slice(None), slice(0, w)),
        "right-half": (slice(None), slice(w, None)),
        "center": (slice(H // 4, H - H // 4), slice(W // 4, W - W // 4)),
    }
    if region == "border":
        mask[:] = 1
        mask[:, H // 4: H - H // 4, W // 4: W - W // 4] = 0
    else:
        rows, cols = parts[region]
        mask[:, rows, cols] = 1
    return mask


def _fit(tensor: torch.Tensor, shape, what: str) -> torch.Tensor:
    try:
        return tensor.float().expand(shape).clone()
    except RuntimeError:
        raise ConfigError(f"terms: the {what} has shape {list(tensor.shape)}, which does not fit the prior's samples {list(shape)}") from None


class MaskTerm(MaskedGaussian):
    """The core's masked Gaussian (log c = −Σ_M (x − y)² / (2σ²)) with y a real digit or a
    file, and M a named region or a file; reports ``known_mse``."""

    metric_name = "known_mse"

    def __init__(self, config, ctx):
        shape = check_image_shape(ctx, "mask")
        from .digits import DigitRef

        image = _digit(config.image, shape[-1])[0] if isinstance(config.image, DigitRef) else _tensor_from_file(config.image, "image")
        mask = region_mask(config.region, shape) if isinstance(config.region, str) else _tensor_from_file(config.region, "mask")
        mask = _fit(mask, shape, "mask").to(ctx.device)
        if mask.sum() == 0:
            raise ConfigError("terms: the mask has no known pixels (all zeros)")
        super().__init__(config, ctx, _fit(image, shape, "mask image").to(ctx.device), mask, noise=config.noise)
        self.known = self.mask.sum()

    @property
    def image(self):
        return self.target

    def known_mse(self, x):
        return self.masked_mse(x)


class SegmentationTerm(Term):
    """Mean per-pixel log p(y_ij | x) under a segmentation network (ignored pixels excluded)."""

    def __init__(self, config, ctx):
        super().__init__(config, ctx)
        shape = check_image_shape(ctx, "segmentation")
        from .networks import stroke_labels
        from .digits import DigitRef

        model, num_classes, input_spec = _load_named(config, "segment", ctx.device)
        self.model = _frozen(model.to(ctx.device))
        self.input = NetworkInput(ctx.prior.data_range, *input_spec, ctx.device)
        self.stroke_threshold = sum(ctx.prior.data_range) / 2
        if isinstance(config.labels, DigitRef):
            image, digit = _digit(config.labels, shape[-1])
            labels = stroke_labels(image[None], torch.tensor([digit]))[0]
        else:
            labels = _tensor_from_file(config.labels, "labels").long()
        if labels.ndim != 2 or tuple(labels.shape) != tuple(shape[-2:]):
            raise ConfigError(f"terms: segmentation labels have shape {list(labels.shape)}; expected {list(shape[-2:])}")
        valid = labels[labels != config.ignore_index]
        if valid.numel() and (valid.min() < 0 or valid.max() >= num_classes):
            raise ConfigError(f"terms: segmentation labels must be in 0..{num_classes - 1} (or {config.ignore_index} to ignore)")
        self.labels = labels.to(ctx.device)
        self.ignore_index = config.ignore_index
        self.weight = (labels != config.ignore_index).float().to(ctx.device)

    def _logits(self, x):
        logits = self.model(self.input(x))
        if logits.shape[-2:] != self.labels.shape:
            logits = F.interpolate(logits, size=self.labels.shape, mode="bilinear", align_corners=False)
        return logits

    def log_c(self, x):
        logp = self._logits(x).log_softmax(1)
        target = self.labels.clamp_min(0).expand(x.shape[0], -1, -1)
        picked = logp.gather(1, target[:, None])[:, 0]
        return (picked * self.weight).flatten(1).sum(1) / self.weight.sum().clamp_min(1)

    @torch.no_grad()
    def metrics(self, x):
        predicted = self._logits(x).argmax(1)
        correct = ((predicted == self.labels).float() * self.weight).flatten(1).sum(1) / self.weight.sum().clamp_min(1)
        return {"pixel_accuracy": correct, "stroke_iou": stroke_iou(x[:, 0] > self.stroke_threshold, (self.labels > 0) & (self.weight > 0))}


def stroke_iou(stroke: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU per sample of boolean stroke maps [B, H, W] against a target map [H, W]."""
    target = target.expand_as(stroke)
    inter = (stroke & target).flatten(1).sum(1).float()
    union = (stroke | target).flatten(1).sum(1).float()
    return inter / union.clamp_min(1)
