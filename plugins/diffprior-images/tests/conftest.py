import pytest
import torch

from diffprior import BuildContext


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture
def ctx():
    """A 1×32×32 analytic prior with the digits' data range: terms only need its shape and range."""
    from diffprior import NoiseSchedule
    from diffprior import GaussianPrior

    prior = GaussianPrior(torch.zeros(1, 32, 32), torch.full((1, 32, 32), 0.25), NoiseSchedule.linear(1000), data_range=(-1.0, 1.0))
    return BuildContext(prior=prior, steps=10)


@pytest.fixture(scope="session")
def digits():
    from diffprior_images.digits import mnist_digits

    return mnist_digits("heldout")


def assert_per_sample(term, x):
    """Row i of log c depends on x[i] alone: equal to running each sample by itself, and
    its gradient vanishes on every other sample."""
    batch = term.log_c(x)
    alone = torch.cat([term.log_c(x[i: i + 1]) for i in range(len(x))])
    torch.testing.assert_close(batch, alone, rtol=1e-4, atol=1e-5)
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(term.log_c(x)[0], x)
    assert grad[0].abs().sum() > 0
    assert grad[1:].abs().sum() == 0


def ascend(term, x, steps=20, lr=0.05):
    """A few steps of gradient ascent on log c from x."""
    x = x.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        (-term.log_c(x.clamp(-1, 1)).sum()).backward()
        opt.step()
    return x.detach().clamp(-1, 1)
