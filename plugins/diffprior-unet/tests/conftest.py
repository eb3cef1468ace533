import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    # the machine is shared: keep each test on one core
    torch.set_num_threads(1)
