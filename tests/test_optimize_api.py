"""optimize()'s options and guards, each against a value computed by hand.

With ``prior_weight = 0`` the prior adds nothing to the gradient, so a quadratic term
−log c = ½‖x − y‖² (gradient x − y) makes every optimizer step a formula: SGD with momentum
and weight decay, Adam and Adamax (Kingma & Ba 2015, Algorithms 1 and 2).
"""

import math

import pytest
import torch
from safetensors.torch import save_file

from diffprior import ConfigError, GaussianPrior, NoiseSchedule, NonFiniteError, Options, Pixels, Term, WeightedTerm, optimize
from diffprior.method.schedules import Linear

Y = 0.25


class Quadratic(Term):
    """log c = −½‖x − y‖²: the gradient of −log c is x − y."""

    def log_c(self, x):
        return -0.5 * (x - Y).pow(2).flatten(1).sum(1)

    def metrics(self, x):
        return {"mean": x.flatten(1).mean(1)}


def prior(shape=(2,)):
    return GaussianPrior(torch.zeros(shape), torch.ones(shape), NoiseSchedule.linear(1000))


def quadratic_run(optimizer, x0, **options):
    p = prior()
    o = Options(optimizer=optimizer, prior_weight=0.0, **options)
    return optimize(p, Pixels(p, clip_terms=False), [WeightedTerm("q", Quadratic())], list(range(len(x0))), o,
                    init_params=x0)


X0 = torch.tensor([[1.0, -2.0], [0.5, 3.0]])


def test_sgd_with_momentum_and_weight_decay():
    lr, mu, wd = 0.1, 0.9, 0.05
    x, v = X0.double().clone(), None
    for _ in range(3):
        g = (x - Y) + wd * x
        v = g if v is None else mu * v + g
        x = x - lr * v
    result = quadratic_run({"type": "sgd", "steps": 3, "lr": lr, "momentum": mu, "weight_decay": wd}, X0)
    torch.testing.assert_close(result.x.double(), x, rtol=1e-5, atol=1e-6)


def test_sgd_follows_the_learning_rate_schedule():
    x = X0.double().clone()
    for lr in (0.4, 0.3, 0.2, 0.1):  # Linear(0.4 → 0) at s = 0, 1/4, 1/2, 3/4
        x = x - lr * (x - Y)
    result = quadratic_run({"type": "sgd", "steps": 4, "lr": Linear(start=0.4, end=0.0)}, X0)
    torch.testing.assert_close(result.x.double(), x, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["adam", "adamax"])
def test_adam_and_adamax_steps(kind):
    lr, (b1, b2), eps, wd = 0.05, (0.8, 0.9), 1e-8, 0.3
    x = X0.double().clone()
    m = torch.zeros_like(x)
    u = torch.zeros_like(x)
    for k in range(1, 4):
        g = x - Y + wd * x  # weight decay as an L2 term in the gradient
        m = b1 * m + (1 - b1) * g
        if kind == "adam":
            u = b2 * u + (1 - b2) * g * g
            x = x - lr * (m / (1 - b1**k)) / ((u / (1 - b2**k)).sqrt() + eps)
        else:
            u = torch.maximum(b2 * u, g.abs() + eps)
            x = x - lr / (1 - b1**k) * m / u
    result = quadratic_run({"type": kind, "steps": 3, "lr": lr, "betas": (b1, b2), "weight_decay": wd}, X0)
    torch.testing.assert_close(result.x.double(), x, rtol=1e-5, atol=1e-6)


def test_losses_metrics_and_seeds_of_the_result():
    p = prior()
    o = Options(optimizer={"type": "sgd", "steps": 2, "lr": 0.5}, prior_weight=0.0, seed=5, batch=2)
    result = optimize(p, Pixels(p), [WeightedTerm("q", Quadratic(), weight=2.0)], options=o, init_params=X0)
    assert result.seeds == [5, 6] and result.steps_done == 2 and not result.interrupted
    # step 0 at X0, step 1 at X0 − 0.5·2·(X0 − y) = y: the term's loss is −λ log c = λ·½‖x − y‖²
    expected = torch.stack([(X0 - Y).pow(2).sum(1), torch.zeros(2)])
    torch.testing.assert_close(result.losses["q"], expected)
    assert result.losses["prior"].shape == (2, 2)
    torch.testing.assert_close(result.metrics["q.log_c"], torch.zeros(2))
    torch.testing.assert_close(result.metrics["q.mean"], torch.full((2,), Y))
    torch.testing.assert_close(result.params, torch.full((2, 2), Y))


def test_a_denoised_result_keeps_the_optimised_x_too():
    p = GaussianPrior(torch.full((3,), 0.7), torch.full((3,), 1e-4), NoiseSchedule.linear(1000))
    o = Options(optimizer={"steps": 1, "lr": 0.0}, denoise={"from_t": 500, "steps": 20, "method": "ddim"})
    result = optimize(p, Pixels(p), [], [0], o, init_params=torch.full((3,), -2.0))
    torch.testing.assert_close(result.x_optimized, torch.full((1, 3), -2.0))
    # from t = 500 a near-deterministic prior pulls the sample to its mean
    assert (result.x - 0.7).abs().max() < 0.2


@pytest.mark.parametrize("init, check", [
    ({"type": "zeros"}, lambda x, g: torch.equal(x, torch.zeros_like(x))),
    ({"type": "noise", "scale": 3.0},
     lambda x, g: torch.allclose(x[1], 3.0 * torch.randn(2, 16, generator=torch.Generator().manual_seed(g[1])))),
    ({"type": "variable"},
     lambda x, g: torch.allclose(x[0], torch.randn(2, 16, generator=torch.Generator().manual_seed(g[0])))),
])
def test_init_types(init, check):
    p = prior((2, 16))
    o = Options(optimizer={"steps": 1, "lr": 0.0}, init=init)
    result = optimize(p, Pixels(p), [], [4, 9, 13], o)
    assert result.params.shape == (3, 2, 16) and result.params.dtype == torch.float32
    assert check(result.params, [4, 9, 13])


@pytest.mark.parametrize("key", ["params", "x"])
def test_init_from_a_file(tmp_path, key):
    path = tmp_path / "start.safetensors"
    save_file({key: torch.tensor([[1.5, -0.5]])}, str(path))
    p = prior()
    o = Options(optimizer={"steps": 1, "lr": 0.0}, init={"type": "file", "path": str(path)})
    assert torch.equal(optimize(p, Pixels(p), [], [0], o).params, torch.tensor([[1.5, -0.5]]))


def test_init_file_without_params_or_x(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"y": torch.zeros(2)}, str(path))
    o = Options(optimizer={"steps": 1}, init={"type": "file", "path": str(path)})
    with pytest.raises(ConfigError, match="has neither a 'params' nor an 'x' tensor$"):
        optimize(prior(), Pixels(prior()), [], [0], o)


def test_one_start_serves_every_sample_and_a_wrong_shape_is_named():
    p = prior()
    o = Options(optimizer={"steps": 1, "lr": 0.0})
    result = optimize(p, Pixels(p), [], [0, 1, 2], o, init_params=torch.tensor([0.5, 1.5]))
    assert torch.equal(result.params, torch.tensor([[0.5, 1.5]] * 3))
    with pytest.raises(ValueError, match=r"^initial parameters have shape \(2, 3\); expected \(3, 2\) or \(2,\)$"):
        optimize(p, Pixels(p), [], [0, 1, 2], o, init_params=torch.zeros(2, 3))


def test_options_must_be_options():
    with pytest.raises(TypeError, match=r"^options must be a diffprior.Options \(or a run config\), got dict$"):
        optimize(prior(), Pixels(prior()), [], [0], {"steps": 3})


class _PerPixel(Term):
    def log_c(self, x):
        return x  # [B, 2]: not one score per sample


class _InfiniteSlope(Term):
    def log_c(self, x):
        return x.abs().sqrt().flatten(1).sum(1)  # finite at 0, its gradient is not


def test_a_term_with_the_wrong_shape_is_named():
    o = Options(optimizer={"steps": 2})
    with pytest.raises(ValueError, match=r"^term 'pp' returned log c of shape \(3, 2\); expected \(3,\): one score per sample$"):
        optimize(prior(), Pixels(prior()), [WeightedTerm("pp", _PerPixel())], [0, 1, 2], o)


def test_non_finite_prior_and_gradient_are_named_with_a_partial_result():
    p = prior()
    start = torch.tensor([[0.0, 0.0], [math.nan, 0.0], [1.0, 1.0]])
    o = Options(optimizer={"steps": 3})
    with pytest.raises(NonFiniteError, match=r"^the prior term is not finite at step 0 \(samples \[1\]\): check the prior and the variable's output$") as info:
        optimize(p, Pixels(p), [], [0, 1, 2], o, init_params=start)
    assert info.value.partial.steps_done == 0 and info.value.partial.interrupted
    with pytest.raises(NonFiniteError, match=r"^the gradient is not finite at step 0 \(samples \[1\]\): lower the learning rate or a term's weight$"):
        optimize(p, Pixels(p), [WeightedTerm("slope", _InfiniteSlope())], [0, 1], o,
                 init_params=torch.tensor([[1.0, 1.0], [0.0, 1.0]]))


def test_the_progress_bar_shows_the_timestep_and_the_last_steps_losses(capsys):
    p = prior()
    o = Options(optimizer={"steps": 3}, timesteps=250)
    result = optimize(p, Pixels(p), [WeightedTerm("q", Quadratic())], [0], o, progress=True)
    err = capsys.readouterr().err
    assert err.startswith("\rfree energy: ") or "\rfree energy: " in err
    assert "3/3" in err and "t=250" in err and "step/s" in err
    last = err.split("\r")[-1]
    assert f"prior={float(result.losses['prior'][-1].mean()):.4f}" in last
    assert f"q={float(result.losses['q'][-1].mean()):.3g}" in last


@pytest.mark.parametrize("gradient", ["full", "sds"])
def test_several_noise_draws_average_per_sample(gradient):
    """A Gaussian prior with σ² = 1e-8 makes ε − ε_θ(x_t) = −k√ᾱ(x − μ) whatever ε is (see
    test_optimizer_ground_truth), so with 3 draws each sample's loss and gradient are still
    its own closed form: averaging across samples instead of across draws would mix them."""
    mean = torch.tensor([0.3, -0.2])
    p = GaussianPrior(mean, torch.full((2,), 1e-8), NoiseSchedule.linear(1000))
    t, lr, D = 200, 0.05, 2
    ab = float(p.noise.alphas_cumprod[t])
    k = (1 - ab) ** 0.5 / (ab * 1e-8 + 1 - ab)
    x0 = torch.tensor([[1.0, 2.0], [-3.0, 0.5], [0.0, 0.0]])
    o = Options(optimizer={"type": "sgd", "steps": 1, "lr": lr}, timesteps=t, gradient=gradient, noise_samples=3)
    result = optimize(p, Pixels(p), [], [0, 1, 2], o, init_params=x0)
    expected_loss = k * k * ab * (x0 - mean).pow(2).sum(1) / D
    torch.testing.assert_close(result.losses["prior"][0], expected_loss, rtol=1e-4, atol=1e-6)
    slope = 2 * (k * k if gradient == "full" else k) * ab / D
    torch.testing.assert_close(result.params, x0 - lr * slope * (x0 - mean), rtol=1e-4, atol=1e-6)


class _BadMetrics(Quadratic):
    def metrics(self, x):
        raise RuntimeError("metrics failed")


def test_an_interrupted_run_keeps_its_metrics_and_is_not_denoised():
    p = prior()

    def stop_at_2(state):
        if state.step == 2:
            raise KeyboardInterrupt

    o = Options(optimizer={"type": "sgd", "steps": 10, "lr": 0.5}, prior_weight=0.0,
                denoise={"from_t": 500, "steps": 5})
    result = optimize(p, Pixels(p), [WeightedTerm("q", Quadratic())], [0], o, init_params=X0[:1], callbacks=[stop_at_2])
    assert result.interrupted and result.steps_done == 2
    assert torch.equal(result.x, result.x_optimized)  # not denoised
    torch.testing.assert_close(result.metrics["q.log_c"], Quadratic().log_c(result.x))
    # metrics that fail leave a result without them rather than no result
    broken = optimize(p, Pixels(p), [WeightedTerm("q", _BadMetrics())], [0], o, init_params=X0[:1], callbacks=[stop_at_2])
    assert broken.metrics == {} and broken.steps_done == 2


def test_a_run_stopped_before_its_first_step_has_empty_histories():
    p = prior()
    o = Options(optimizer={"steps": 3})
    with pytest.raises(NonFiniteError) as info:
        optimize(p, Pixels(p), [WeightedTerm("q", Quadratic())], [0, 1, 2], o,
                 init_params=torch.tensor([[0.0, 0.0], [math.nan, 0.0], [1.0, 1.0]]))
    partial = info.value.partial
    assert partial.losses["prior"].shape == (0, 3) and partial.losses["q"].shape == (0, 3)
    assert partial.timesteps.shape == (0, 3) and partial.metrics == {}


def test_a_file_with_params_and_x_starts_from_params(tmp_path):
    path = tmp_path / "both.safetensors"
    save_file({"x": torch.tensor([[9.0, 9.0]]), "params": torch.tensor([[1.5, -0.5]])}, str(path))
    p = prior()
    o = Options(optimizer={"steps": 1, "lr": 0.0}, init={"type": "file", "path": str(path)})
    assert torch.equal(optimize(p, Pixels(p), [], [0], o).params, torch.tensor([[1.5, -0.5]]))


class _Constant(Term):
    def log_c(self, x):
        return torch.zeros(x.shape[0])  # no gradient at all


class _Unconnected(Term):
    """A score with a gradient that does not reach x (e.g. a term's own learnable scale)."""

    def __init__(self):
        self.scale = torch.zeros((), requires_grad=True)

    def log_c(self, x):
        return self.scale.expand(x.shape[0])


@pytest.mark.parametrize("first", [_Constant, _Unconnected], ids=["no gradient", "gradient misses x"])
def test_a_clipped_term_without_gradient_on_x_next_to_one_with_gradient(first):
    """Two clipped terms; the first adds nothing to x's gradient, the second is cut to its bound."""
    x, lr, bound = X0.double().clone(), 0.1, 0.5
    for _ in range(2):
        g = x - Y
        g = g * torch.clamp(bound / g.norm(dim=1, keepdim=True), max=1.0)
        x = x - lr * g
    p = prior()
    o = Options(optimizer={"type": "sgd", "steps": 2, "lr": lr}, prior_weight=0.0)
    terms = [WeightedTerm("c", first(), clip={"max_norm": bound}),
             WeightedTerm("q", Quadratic(), clip={"max_norm": bound})]
    result = optimize(p, Pixels(p, clip_terms=False), terms, [0, 1], o, init_params=X0)
    torch.testing.assert_close(result.x.double(), x, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(result.losses["c"], torch.zeros(2, 2))


def test_the_returned_x_is_the_variables_map_at_the_end_of_the_run():
    # a label map's σ anneals with progress: x_optimized is the map at progress 1 (σ_end)
    from diffprior.method.variables import SimplexLabelMap

    p = GaussianPrior(torch.zeros(3, 2, 2), torch.ones(3, 2, 2), NoiseSchedule.linear(1000))
    variable = SimplexLabelMap(p, sigma_start=0.5, sigma_end=0.05)
    start = torch.linspace(0.2, 1.3, 12).view(3, 2, 2)
    result = optimize(p, variable, [], [0], Options(optimizer={"steps": 2, "lr": 0.0}), init_params=start)
    torch.testing.assert_close(result.x_optimized, variable.to_x(start[None], 1.0))
    assert not torch.allclose(result.x_optimized, variable.to_x(start[None], 0.5), atol=1e-3)


def test_denoising_follows_its_method_its_steps_and_each_samples_seed():
    p = GaussianPrior(torch.zeros(4), torch.full((4,), 0.5), NoiseSchedule.linear(1000))

    def denoised(seed, **denoise):
        o = Options(optimizer={"steps": 1, "lr": 0.0}, denoise={"from_t": 300, **denoise})
        return optimize(p, Pixels(p), [], [seed], o, init_params=torch.full((4,), 0.3)).x

    ddpm = denoised(7, method="ddpm", steps=5)
    torch.manual_seed(123)  # the global generator plays no part: the sample's own seed decides
    assert torch.equal(denoised(7, method="ddpm", steps=5), ddpm)
    assert (denoised(8, method="ddpm", steps=5) - ddpm).abs().max() > 1e-3  # another seed, other noise
    ddim = denoised(7, method="ddim", steps=5)
    assert (ddim - ddpm).abs().max() > 1e-3
    assert (denoised(7, method="ddim", steps=1) - ddim).abs().max() > 1e-3
    assert (denoised(7, method="ddim") - ddim).abs().max() > 1e-4  # default: every timestep


def test_a_broken_init_file_is_named_as_init_path(tmp_path):
    path = tmp_path / "start.safetensors"
    path.write_bytes(b"not a tensor file")
    o = Options(optimizer={"steps": 1}, init={"type": "file", "path": str(path)})
    with pytest.raises(ConfigError, match=rf"^init.path {path} is not a readable safetensors file"):
        optimize(prior(), Pixels(prior()), [], [0], o)


class _Frozen(Pixels):
    """A variable whose x does not depend on its parameters."""

    def to_x(self, params, progress):
        return torch.full_like(params, 0.5).detach()


@pytest.mark.parametrize("clip", ["none", {"max_norm": 1.0}])
def test_parameters_that_x_does_not_depend_on_stay_where_they_are(clip):
    p = prior()
    o = Options(optimizer={"type": "sgd", "steps": 3, "lr": 0.1})
    result = optimize(p, _Frozen(p), [WeightedTerm("q", Quadratic(), clip=clip)], [0, 1], o, init_params=X0)
    assert torch.equal(result.params, X0)


@pytest.mark.parametrize("n_terms", [1, 2])
def test_a_clip_that_never_bites_changes_nothing_through_a_nonlinear_variable(n_terms):
    # bounded pixels (a sigmoid, whose backward needs its saved output) and the full prior
    # gradient: the per-term gradients of the clipped path must equal one fused backward pass;
    # the bound follows the paper's cosine-linear shape (it depends on the step index)
    from diffprior import BoundedPixels

    p = GaussianPrior(torch.zeros(2), torch.ones(2), NoiseSchedule.linear(1000), data_range=(-1.0, 1.0))
    never = {"max_norm": {"type": "cosine-linear", "high": 1e6, "low": 1e5}}

    def run(clip):
        terms = [WeightedTerm(f"q{k}", Quadratic(), clip=clip) for k in range(n_terms)]
        o = Options(optimizer={"type": "sgd", "steps": 4, "lr": 0.2}, gradient="full", timesteps=300)
        return optimize(p, BoundedPixels(p), terms, [0, 1], o, init_params=X0).params

    fused, clipped = run("none"), run(never)
    torch.testing.assert_close(clipped, fused, rtol=1e-5, atol=1e-6)
    assert (fused - X0).abs().min() > 1e-3  # the run moved every parameter


def test_no_options_means_the_defaults_and_no_progress_bar_unless_asked(capsys):
    p = prior()
    result = optimize(p, Pixels(p), [WeightedTerm("q", Quadratic())], [0])
    assert result.steps_done == Options().optimizer.steps
    assert capsys.readouterr().err == ""
    optimize(p, Pixels(p), [], [0], Options(optimizer={"steps": 2}), progress="my label")
    assert "my label: " in capsys.readouterr().err


def test_a_start_in_double_precision_is_optimised_in_float32():
    p = prior()
    result = optimize(p, Pixels(p), [], [0], Options(optimizer={"steps": 1, "lr": 0.0}),
                      init_params=torch.tensor([0.25, 0.5], dtype=torch.float64))
    assert result.params.dtype == torch.float32 and result.x.dtype == torch.float32


class _GainGaussian(GaussianPrior):
    """A prior with a learnable parameter: optimising samples must not touch it."""

    def __init__(self):
        super().__init__(torch.zeros(2), torch.ones(2), NoiseSchedule.linear(1000))
        self.gain = torch.nn.Parameter(torch.ones(()))

    def eps(self, x_t, t):
        return self.gain * super().eps(x_t, t)


def test_the_priors_own_parameters_get_no_gradient():
    p = _GainGaussian()
    optimize(p, Pixels(p), [WeightedTerm("q", Quadratic())], [0, 1], Options(optimizer={"steps": 3}, gradient="full"))
    assert p.gain.grad is None and not p.gain.requires_grad


def test_step_dependent_schedules_get_the_step_index():
    # cosine-linear depends on the step index i, not only on s = i/S: an SGD run with it as the
    # learning rate follows the formula step by step (prior weight 0, quadratic term)
    from diffprior.method.schedules import CosineLinear

    steps, lr = 4, CosineLinear(high=0.5, low=0.0, amplitude=0.25, period=1.0)
    x = X0.double().clone()
    for i in range(steps):
        r = 1 - i / steps
        x = x - 0.5 * (r + 0.25 * r * math.cos(i)) * (x - Y)
    result = quadratic_run({"type": "sgd", "steps": steps, "lr": lr}, X0)
    torch.testing.assert_close(result.x.double(), x, rtol=1e-5, atol=1e-6)
    # as the prior weight: the same run as with those values written out as a piecewise schedule
    from diffprior.method.schedules import Piecewise

    p = prior()
    weights = CosineLinear(high=2.0, low=0.0, amplitude=0.5, period=1.0)
    written = Piecewise(points=[(i / steps, weights(i / steps, i, steps)) for i in range(steps)])

    def run(prior_weight):
        o = Options(optimizer={"type": "sgd", "steps": steps, "lr": 0.1}, prior_weight=prior_weight,
                    timesteps=300, gradient="sds")
        return optimize(p, Pixels(p), [WeightedTerm("q", Quadratic())], [0, 1], o, init_params=X0).x

    torch.testing.assert_close(run(weights), run(written))
    assert (run(weights) - run(1.0)).abs().max() > 1e-3


class _NanTerm(Term):
    def log_c(self, x):
        return torch.full((x.shape[0],), math.nan)


def test_a_non_finite_term_is_named_with_what_to_do():
    p = prior()
    with pytest.raises(NonFiniteError, match=r"^term 'bad' is not finite at step 0 \(samples \[0, 1\]\): "
                                             r"lower its weight, clip its gradient or check its inputs$"):
        optimize(p, Pixels(p), [WeightedTerm("bad", _NanTerm())], [0, 1], Options(optimizer={"steps": 2}))


@pytest.mark.parametrize("gradient", ["full", "sds"])
def test_the_free_energy_gives_one_loss_and_one_objective_per_sample(gradient):
    from diffprior.method.optimizer import FreeEnergy
    from diffprior.method.rng import generators

    p = prior((3,))
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), requires_grad=True)
    loss, objective = FreeEnergy(p, gradient, noise_samples=2)(x, torch.full((4,), 200), generators(range(4)))
    assert loss.shape == (4,) and objective.shape == (4,)
    (grad,) = torch.autograd.grad(objective[1], x)
    assert grad[[0, 2, 3]].abs().max() == 0 and grad[1].abs().max() > 0  # sample 1's objective moves only sample 1
