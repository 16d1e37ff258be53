"""Any torchvision classification network prunes, exports and gets cheaper (issue #9, acceptance 1).

Twelve architectures covering depthwise convs (MobileNetV2/V3, EfficientNet, MnasNet), squeeze-excitation (MobileNetV3,
EfficientNet), residual adds (ResNet, RegNet), grouped convs (RegNet-X), concatenation (DenseNet), channel split + shuffle
(ShuffleNetV2), LayerNorm + layer scale in channels-last (ConvNeXt), a plain VGG-BN and SqueezeNet's fire modules ×
{l1-norm, random, taylor} at --ratio 0.5 --round-to 8, untrained weights, 32×32 inputs (every one of these runs at 32×32:
adaptive pooling), batch 2: the pruned model runs, every recorded width is the layer's, a multiple of 8 or the layer's
whole width, and MACs fall. ONNX export with parity and slimness (``export_and_verify``) is checked once per architecture
(the method rotates), because exporting is the slow part and whether a file exports depends on the architecture, not on
which channels went; ``PRUNEBENCH_TORCHVISION_ALL=1`` exports every combination.
"""

from __future__ import annotations

import copy
import os
from functools import lru_cache

import pytest
import torch

from prunebench.data import calibration_batches, synthetic
from prunebench.export.onnx_export import export_and_verify
from prunebench.metrics import flops
from prunebench.models import build_model
from prunebench.pruning import prune_model
from prunebench.pruning.base import prunable_layers

ARCHS = ["mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "resnet18", "resnet50", "densenet121", "regnet_x_400mf",
         "shufflenet_v2_x1_0", "convnext_tiny", "vgg11_bn", "squeezenet1_1", "mnasnet0_5"]
METHODS = ["l1-norm", "random", "taylor"]
SHAPE = (3, 32, 32)
EVERY_EXPORT = os.environ.get("PRUNEBENCH_TORCHVISION_ALL") == "1"


@lru_cache(maxsize=None)
def _dense(arch: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(f"torchvision:{arch}", 10, input_shape=SHAPE).eval()
    prunable_layers(model, f"torchvision:{arch}")   # groups found once; the copies each method prunes inherit them
    return model


@lru_cache(maxsize=1)
def _calibration():
    return calibration_batches(synthetic(n_train=8, n_test=4, size=SHAPE[-1]), batches=1, batch_size=4)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("arch", ARCHS)
def test_torchvision_model_prunes_exports_and_gets_cheaper(arch: str, method: str, tmp_path) -> None:
    name = f"torchvision:{arch}"
    dense = _dense(arch)
    model = copy.deepcopy(dense)
    pruned, record = prune_model(model, name, 10, method, ratio=0.5, round_to=8, seed=1,
                                 calibration=_calibration() if method == "taylor" else None)
    x = torch.randn(2, *SHAPE, generator=torch.Generator().manual_seed(2))
    pruned.eval()
    with torch.no_grad():
        assert pruned(x).shape == (2, 10)
    modules = dict(pruned.named_modules())
    dense_modules = dict(dense.named_modules())
    assert record.widths and record.input_shape == list(SHAPE)
    narrowed = 0
    for layer, width in record.widths.items():
        m = modules[layer]
        assert (m.out_channels if isinstance(m, torch.nn.Conv2d) else m.out_features) == width, layer
        d = dense_modules[layer]
        full = d.out_channels if isinstance(d, torch.nn.Conv2d) else d.out_features
        assert width % 8 == 0 or width == full, (layer, width, full)
        narrowed += width < full
    assert narrowed >= len(record.widths) // 2
    before, after = flops.count(dense, SHAPE), flops.count(pruned, SHAPE)
    assert after.macs < 0.8 * before.macs and after.params < before.params
    if EVERY_EXPORT or METHODS[ARCHS.index(arch) % len(METHODS)] == method:
        check = export_and_verify(pruned, SHAPE, tmp_path / f"{arch}.onnx", x)
        assert check.ok and check.parity_ok and check.slim_ok
