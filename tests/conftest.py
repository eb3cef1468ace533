import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic_threads():
    # Small tensors: one thread is faster and keeps results independent of the core count.
    torch.set_num_threads(1)
    yield
