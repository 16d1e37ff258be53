"""The conftest guard: pytest.approx refuses torch tensors on every pytest version (they break on pytest >= 9)."""

import pytest, torch
def test_guard_expected():
    with pytest.raises(TypeError, match="torch.Tensor"):
        1.0 == pytest.approx(torch.tensor(1.0))
def test_guard_actual():
    with pytest.raises(TypeError, match="torch.Tensor"):
        assert torch.tensor(1.0) == pytest.approx(1.0)
def test_ok():
    assert 1.0 == pytest.approx(1.0)
