"""prunebench: is a pruned network worth more than the same small architecture trained from scratch?

The package is organised as the protocol runs: ``models`` (architectures and the registry), ``pruning`` (one module per
method over torch-pruning), ``bench`` (FLOPs, latency, accuracy, ONNX export/verify), ``data``, ``training``, ``runner``
(the experiment stages) and ``cli``.
"""

__version__ = "0.1.0"
