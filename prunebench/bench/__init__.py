"""Measurement: FLOPs/params (flops), accuracy, ONNX export + verification, latency, environment manifest."""
