"""JSON Schema of ``prunebench bench --json`` output (``prunebench.bench/1``), documented in docs/latency.md.

Kept as a plain dict so that it can be printed (``prunebench bench --schema``), validated in tests with ``jsonschema``, and
read by other tools. Additive changes (new optional keys) keep the version; renaming or removing a key bumps it.
"""

from __future__ import annotations

from typing import Any

BENCH_SCHEMA_ID = "prunebench.bench/1"

_num = {"type": "number"}
_int = {"type": "integer"}
_nullable_num = {"type": ["number", "null"]}
_nullable_int = {"type": ["integer", "null"]}
_str = {"type": "string"}

ROW = {
    "type": "object",
    "required": ["variant", "runtime", "device", "batch", "threads", "n", "median_ms", "iqr_ms", "p90_ms", "p99_ms",
                 "mean_ms", "throughput_ips", "warmup_calls", "warmup_stable", "peak_mem_mb", "memory", "timer",
                 "cpu_median_ms"],
    "properties": {
        "variant": _str, "runtime": _str, "device": {"enum": ["cpu", "cuda"]}, "batch": {"type": "integer", "minimum": 1},
        "threads": _int, "n": {"type": "integer", "minimum": 1},
        "median_ms": {"type": "number", "exclusiveMinimum": 0}, "iqr_ms": {"type": "number", "minimum": 0},
        "p90_ms": _num, "p99_ms": _num, "mean_ms": _num, "throughput_ips": _num,
        "warmup_calls": _int, "warmup_stable": {"type": "boolean"}, "peak_mem_mb": _nullable_num, "memory": _str,
        "timer": _str, "info": {"type": "object"}, "cpu_median_ms": _nullable_num, "cpu_iqr_ms": _nullable_num,
    },
}

SPEEDUP = {
    "type": "object",
    "required": ["variant", "reference", "runtime", "device", "batch", "threads", "speedup", "ci_low", "ci_high",
                 "ci_level", "theoretical", "efficiency"],
    "properties": {
        "variant": _str, "reference": _str, "runtime": _str, "device": _str, "batch": _int, "threads": _int,
        "speedup": _num, "ci_low": _num, "ci_high": _num, "ci_level": _num, "n_boot": _int, "paired": {"type": "boolean"},
        "theoretical": _nullable_num, "efficiency": _nullable_num,
        "cpu_speedup": _nullable_num, "cpu_ci_low": _nullable_num, "cpu_ci_high": _nullable_num,
    },
}

VARIANT = {
    "type": "object",
    "required": ["id", "source", "onnx", "reference", "params", "macs", "alignment"],
    "properties": {
        "id": _str, "source": _str, "onnx": _str, "reference": {"type": ["string", "null"]},
        "params": _nullable_int, "macs": _nullable_int, "onnx_values": _nullable_int,
        "alignment": {
            "type": "object", "required": ["multiple", "layers", "misaligned"],
            "properties": {"multiple": _int, "layers": _int, "misaligned": _int, "examples": {"type": "object"}},
        },
    },
}

SKIPPED = {
    "type": "object",
    "required": ["reason"],
    "properties": {"runtime": _str, "device": _str, "batch": _int, "variant": _str, "reason": {"type": "string",
                                                                                               "minLength": 1}},
}

BENCH_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://prunebench.invalid/schema/bench-1.json",
    "title": "prunebench bench --json",
    "type": "object",
    "required": ["schema", "created", "environment", "settings", "variants", "results", "speedups", "skipped"],
    "properties": {
        "schema": {"const": BENCH_SCHEMA_ID},
        "created": _str,
        "environment": {
            "type": "object", "required": ["cpu", "cpu_count", "versions"],
            "properties": {"cpu": _str, "cpu_count": _nullable_int, "versions": {"type": "object"},
                           "gpu": _str, "git_commit": {"type": ["string", "null"]}},
        },
        "settings": {
            "type": "object", "required": ["threads", "batch_sizes", "runtimes", "devices", "repeats", "warmup"],
            "properties": {"threads": _int, "batch_sizes": {"type": "array", "items": _int},
                           "runtimes": {"type": "array", "items": _str}, "devices": {"type": "array", "items": _str},
                           "repeats": _int, "warmup": _int, "cudnn_benchmark": {"type": "boolean"}},
        },
        "variants": {"type": "array", "items": VARIANT, "minItems": 1},
        "results": {"type": "array", "items": ROW},
        "speedups": {"type": "array", "items": SPEEDUP},
        "skipped": {"type": "array", "items": SKIPPED},
    },
}


def validate(doc: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` if ``doc`` does not follow the schema (needs the ``jsonschema`` package)."""
    import jsonschema

    jsonschema.validate(doc, BENCH_SCHEMA)
