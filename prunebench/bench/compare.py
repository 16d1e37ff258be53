"""``prunebench compare BASELINE.json CURRENT.json``: the CI regression gate.

Inputs: ``results.json`` written by ``prunebench run`` (schema ``prunebench.results/1``) or ``prunebench bench --json``
output (``prunebench.bench/1``). Checks, per variant id present in BASELINE:

* accuracy — top-1 may drop by at most ``max_acc_drop`` points (results.json only; bench files carry no accuracy);
* params / MACs — ``exact`` (default) or a relative tolerance (``0.01`` = 1 %);
* latency — **as a ratio to a reference measured in the same run** (pruned median / its seed's baseline median, same
  runtime, device, batch and threads): the ratio may grow by at most ``max_latency_ratio_regression`` (0.10 = 10 %). A CI
  machine that is uniformly slower moves both medians and leaves the ratio alone, so it does not read as a regression.
  Absolute medians are compared only with ``absolute_latency = true`` (same tolerance flag ``max_latency_regression``);
* ``latency_metric``: ``median_ms`` (wall clock) or ``cpu_median_ms`` (process CPU time per call, which does not grow
  when a neighbour takes the core: the steadier choice on shared CI runners; CPU rows only);
* a variant or latency cell in BASELINE but not in CURRENT fails (``allow_missing`` turns that into a note), so a gate
  cannot pass by measuring less;
* a null or missing figure (top-1 of a results.json, params, MACs) of a variant present in both files is a usage error
  (exit 2), as are two results.json files of different experiments (model, dataset, classes or input size): a gate must
  not pass by comparing nothing, or by comparing unlike things. ``allow_missing`` / ``allow_different`` accept them,
  and the summary says so. Figures that are not numbers (``"macs": "lots"``) are a usage error (malformed file).

Exit status: 0 pass, 1 regression, 2 usage error (missing/invalid file, bad flag or tolerance). The Markdown summary (for a
pull-request comment) is printed and, with ``--markdown FILE``, written.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from prunebench.core.errors import PrunebenchError
from prunebench.core.io import read_json, write_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

RESULTS_SCHEMA = "prunebench.results/1"
BENCH_SCHEMA = "prunebench.bench/1"
Cell = tuple[str, str, int, int]   # runtime, device, batch, threads
LATENCY_METRICS = ("median_ms", "cpu_median_ms")


@dataclass
class Tolerances:
    """What the gate allows: top-1 drop (points), relative growth of latency ratios (and of absolute medians, same
    machine only), params/MACs tolerance, and usage switches."""

    max_acc_drop: float = 0.5                    # top-1 points
    max_latency_ratio_regression: float = 0.10   # relative growth of variant/reference median
    params: str = "exact"                        # "exact" or a relative tolerance such as "0.01"
    macs: str = "exact"
    absolute_latency: bool = False               # also compare absolute medians (same machine only!)
    max_latency_regression: float = 0.10         # relative growth of an absolute median, with absolute_latency
    allow_missing: bool = False
    allow_different: bool = False                # compare results of different models/datasets (normally an error)
    reference: str | None = None                 # override the reference variant id for every latency ratio
    latency_metric: str = "median_ms"            # or "cpu_median_ms" (CPU time per call; steadier on shared CPUs)

    def validate(self) -> "Tolerances":
        """Return ``self``. Raises :class:`PrunebenchError` naming the first tolerance of the wrong type or range."""
        for name in ("max_acc_drop", "max_latency_ratio_regression", "max_latency_regression"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
                raise PrunebenchError(f"tolerance {name} must be a number ≥ 0, got {v!r}")
        for name in ("absolute_latency", "allow_missing", "allow_different"):
            if not isinstance(getattr(self, name), bool):
                raise PrunebenchError(f"tolerance {name} must be true or false, got {getattr(self, name)!r}")
        if self.reference is not None and not isinstance(self.reference, str):
            raise PrunebenchError(f"tolerance reference must be a variant id (text), got {self.reference!r}")
        for name in ("params", "macs"):
            _count_tolerance(getattr(self, name), name)
        if self.latency_metric not in LATENCY_METRICS:
            raise PrunebenchError(f"latency_metric must be one of {', '.join(LATENCY_METRICS)}, got "
                                  f"{self.latency_metric!r}")
        return self


def _count_tolerance(value: Any, name: str) -> float:
    """0.0 for "exact", else the relative tolerance."""
    if isinstance(value, str) and value.strip().lower() == "exact":
        return 0.0
    try:
        rel = float(value)
    except (TypeError, ValueError):
        raise PrunebenchError(f"--{name} must be 'exact' or a relative tolerance such as 0.01, got {value!r}") from None
    if rel < 0:
        raise PrunebenchError(f"--{name} must be ≥ 0, got {value!r}")
    return rel


@dataclass
class Variant:
    """One variant's figures: top-1 (%), params, MACs, its latency reference, and latency per cell (milliseconds, the
    chosen metric)."""

    id: str
    top1: float | None
    params: int | None
    macs: int | None
    reference: str | None
    latency: dict[Cell, float] = field(default_factory=dict)


@dataclass
class Doc:
    """A results.json or ``bench --json`` file reduced to what the gate compares: variants by id, provenance and
    (results.json) the experiment."""

    path: str
    kind: str
    created: str | None
    commit: str | None
    variants: dict[str, Variant]
    experiment: dict[str, Any] = field(default_factory=dict)   # model, data, classes, input size (results.json only)


@dataclass
class Check:
    """One comparison of the gate: kind (accuracy, params, macs, latency-ratio, latency, presence), variant, cell, both
    values as text, the change, the limit and whether it passed."""

    kind: str          # accuracy | params | macs | latency-ratio | latency | presence
    variant: str
    cell: str
    baseline: str
    current: str
    change: str
    limit: str
    ok: bool
    note: str = ""


# ------------------------------------------------------------------------------------------------------ loading
def load(path: str | Path, metric: str = "median_ms") -> Doc:
    """``path`` (results.json or ``bench --json`` output) as a :class:`Doc`, latencies in ``metric``. Raises
    :class:`PrunebenchError` for a missing, foreign or malformed file."""
    p = Path(path)
    if not p.is_file():
        raise PrunebenchError(f"file not found: {p}")
    d = read_json(p)
    if not isinstance(d, dict) or d.get("schema") not in (RESULTS_SCHEMA, BENCH_SCHEMA):
        raise PrunebenchError(f"{p} is neither a results.json ({RESULTS_SCHEMA}) nor a bench --json file ({BENCH_SCHEMA})")
    env = d.get("environment") or {}
    try:
        variants = _results_variants(d, metric) if d["schema"] == RESULTS_SCHEMA else _bench_variants(d, metric)
        experiment = _experiment(d) if d["schema"] == RESULTS_SCHEMA else {}
    except KeyError as e:
        raise PrunebenchError(f"{p} is malformed (no {e} entry); regenerate it") from None
    except (TypeError, ValueError, AttributeError) as e:
        raise PrunebenchError(f"{p} is malformed ({e}); regenerate it") from None
    return Doc(str(p), d["schema"], d.get("created"), env.get("git_commit"), variants, experiment)


def _number(value: Any, where: str, integer: bool = False) -> Any:
    """``value`` if it is a finite number (an integer where ``integer``) or null; else ValueError naming ``where``."""
    if value is None:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (integer and float(value) != int(value)):
        raise ValueError(f"{where} is {value!r}, not {'an integer' if integer else 'a number'}")
    return value


def _cells(rows: list[dict[str, Any]], metric: str, where: str) -> dict[Cell, float]:
    """Latency cells; a row without the metric (e.g. no CPU time for a GPU row, or an older file) is absent."""
    return {(str(r["runtime"]), str(r["device"]), int(_number(r["batch"], f"{where} batch", True)),
             int(_number(r["threads"], f"{where} threads", True))): float(_number(r[metric], f"{where} {metric}"))
            for r in rows if r.get(metric) is not None}


def _experiment(d: dict[str, Any]) -> dict[str, Any]:
    cfg, data = d.get("config") or {}, d.get("data") or {}
    shape = data.get("input_shape")
    return {k: v for k, v in (("model", cfg.get("model")), ("dataset", data.get("name")),
                              ("classes", data.get("num_classes")),
                              ("input size", "×".join(map(str, shape)) if shape else None)) if v is not None}


def _results_variants(d: dict[str, Any], metric: str) -> dict[str, Variant]:
    out = {}
    ids = {v["id"] for v in d["variants"]}
    for v in d["variants"]:
        where = f"variant {v['id']}"
        ref = f"seed{v['seed']}/baseline" if v["regime"] != "baseline" else None
        out[v["id"]] = Variant(v["id"], _number(v["accuracy"]["top1"], f"{where} top1"),
                               _number(v.get("params"), f"{where} params", True),
                               _number(v.get("macs"), f"{where} macs", True),
                               ref if ref in ids else None, _cells(v.get("latency", []), metric, f"{where} latency"))
    return out


def _bench_variants(d: dict[str, Any], metric: str) -> dict[str, Variant]:
    rows: dict[str, list[dict[str, Any]]] = {}
    for r in d["results"]:
        rows.setdefault(r["variant"], []).append(r)
    return {v["id"]: Variant(v["id"], None, _number(v.get("params"), f"variant {v['id']} params", True),
                             _number(v.get("macs"), f"variant {v['id']} macs", True), v.get("reference"),
                             _cells(rows.get(v["id"], []), metric, f"variant {v['id']} latency"))
            for v in d["variants"]}


def check_comparable(base: Doc, cur: Doc, tol: Tolerances) -> list[str]:
    """Raise a usage error if the two files are different experiments or a shared variant lacks a figure the other file
    has; with ``allow_different`` / ``allow_missing`` return those findings as notes for the summary instead."""
    notes = []
    differ = [f"{k} {base.experiment[k]} vs {cur.experiment[k]}" for k in base.experiment
              if k in cur.experiment and base.experiment[k] != cur.experiment[k]]
    if differ:
        text = f"{base.path} and {cur.path} are different experiments ({'; '.join(differ)})"
        if not tol.allow_different:
            raise PrunebenchError(f"{text}; compare results of the same experiment, or pass --allow-different to "
                                  "compare them anyway")
        notes.append(text)
    missing = []
    for vid, b in base.variants.items():
        c = cur.variants.get(vid)
        if c is None:
            continue
        figures = ["params", "macs"] + (["top1"] if base.kind == cur.kind == RESULTS_SCHEMA else [])
        for kind in figures:
            bv, cv = getattr(b, kind), getattr(c, kind)
            if (bv is None) != (cv is None) or (kind == "top1" and bv is None):
                where = cur.path if cv is None else base.path
                missing.append(f"{vid} has no {kind} in {where}")
    if missing:
        text = f"{len(missing)} figure(s) are null or missing: {', '.join(missing[:3])}" + (
            f" (+{len(missing) - 3} more)" if len(missing) > 3 else "")
        if not tol.allow_missing:
            raise PrunebenchError(f"{text}; regenerate the file, or pass --allow-missing to compare without them")
        notes.append(text)
    return notes


def load_tolerances(path: str | Path | None, overrides: dict[str, Any]) -> Tolerances:
    """Defaults, then the [compare] table of ``path`` (TOML), then the non-None ``overrides`` (flags), validated. Raises
    :class:`PrunebenchError` for an unreadable file, an unknown key or a bad value."""
    data: dict[str, Any] = {}
    if path:
        p = Path(path)
        if not p.is_file():
            raise PrunebenchError(f"tolerances file not found: {p}")
        try:
            raw = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as e:
            raise PrunebenchError(f"{p} is not valid TOML: {e}; fix the file") from None
        except (OSError, UnicodeDecodeError) as e:
            raise PrunebenchError(f"cannot read {p}: {e}; give a readable UTF-8 TOML file") from None
        data = raw.get("compare", raw)
        if not isinstance(data, dict):
            raise PrunebenchError(f"[compare] in {p} must be a table, got {data!r}")
    names = {f.name for f in dataclasses.fields(Tolerances)}
    for key in data:
        if key.replace("-", "_") not in names:
            raise PrunebenchError(f"unknown tolerance {key!r} in {path}; valid keys: {', '.join(sorted(names))}")
    data = {k.replace("-", "_"): v for k, v in data.items()}
    data.update({k: v for k, v in overrides.items() if v is not None})
    return Tolerances(**data).validate()


# ------------------------------------------------------------------------------------------------------ checks
def _fmt_cell(c: Cell) -> str:
    return f"{c[0]}/{c[1]} b{c[2]} {c[3]}T"


def compare(base: Doc, cur: Doc, tol: Tolerances) -> list[Check]:
    """Every check of ``cur`` against ``base`` under ``tol``: accuracy, params, MACs and latency ratios (absolute
    medians with ``absolute_latency``), plus presence."""
    checks: list[Check] = []
    acc_lim = f"drop ≤ {tol.max_acc_drop:g} pts"
    for vid, b in base.variants.items():
        c = cur.variants.get(vid)
        if c is None:
            checks.append(Check("presence", vid, "", "present", "missing", "", "must be present", tol.allow_missing,
                                "variant not in CURRENT"))
            continue
        if b.top1 is not None and c.top1 is not None:
            drop = b.top1 - c.top1
            checks.append(Check("accuracy", vid, "top-1", f"{b.top1:.2f}", f"{c.top1:.2f}",
                                f"{c.top1 - b.top1:+.2f} pts", acc_lim, drop <= tol.max_acc_drop + 1e-9))
        for kind in ("params", "macs"):
            bv, cv = getattr(b, kind), getattr(c, kind)
            if bv is None or cv is None:
                continue
            rel = _count_tolerance(getattr(tol, kind), kind)
            change = (cv - bv) / bv if bv else float(cv != bv)
            checks.append(Check(kind, vid, "", f"{bv:,}", f"{cv:,}", f"{100 * change:+.2f} %",
                                "exact" if rel == 0 else f"±{100 * rel:g} %", abs(change) <= rel + 1e-12))
        ref_id = tol.reference or b.reference
        if ref_id and ref_id != vid:
            checks += _ratio_checks(vid, ref_id, base, cur, tol)
        if tol.absolute_latency:
            for cell, bm in sorted(b.latency.items()):
                cm = c.latency.get(cell)
                if cm is None:
                    checks.append(_missing("latency", vid, cell, f"{bm:.3f} ms", tol))
                    continue
                change = cm / bm - 1
                checks.append(Check("latency", vid, _fmt_cell(cell), f"{bm:.3f} ms", f"{cm:.3f} ms",
                                    f"{100 * change:+.1f} %", f"≤ +{100 * tol.max_latency_regression:g} %",
                                    change <= tol.max_latency_regression + 1e-12))
    return checks


def _missing(kind: str, vid: str, cell: Cell, baseline: str, tol: Tolerances) -> Check:
    return Check(kind, vid, _fmt_cell(cell), baseline, "missing", "", "must be measured", tol.allow_missing,
                 "cell not measured in CURRENT (runtime skipped?)")


def _ratio_checks(vid: str, ref_id: str, base: Doc, cur: Doc, tol: Tolerances) -> list[Check]:
    b, bref = base.variants[vid], base.variants.get(ref_id)
    c, cref = cur.variants.get(vid), cur.variants.get(ref_id)
    if bref is None:
        raise PrunebenchError(f"reference variant {ref_id!r} is not in {base.path}")
    out = []
    for cell, bm in sorted(b.latency.items()):
        if cell not in bref.latency:
            continue
        b_ratio = bm / bref.latency[cell]
        if c is None or cref is None or cell not in c.latency or cell not in cref.latency:
            out.append(_missing("latency-ratio", vid, cell, f"{b_ratio:.3f}", tol))
            continue
        c_ratio = c.latency[cell] / cref.latency[cell]
        change = c_ratio / b_ratio - 1
        out.append(Check("latency-ratio", vid, _fmt_cell(cell), f"{b_ratio:.3f}", f"{c_ratio:.3f}",
                         f"{100 * change:+.1f} %", f"≤ +{100 * tol.max_latency_ratio_regression:g} %",
                         change <= tol.max_latency_ratio_regression + 1e-12, f"÷ {ref_id}"))
    return out


# ------------------------------------------------------------------------------------------------------ output
def render_markdown(base: Doc, cur: Doc, tol: Tolerances, checks: list[Check], notes: Sequence[str] = ()) -> str:
    """The gate's verdict as Markdown: header, tolerances, notes, a table of the regressions, then the passing checks
    (folded)."""
    failed = [c for c in checks if not c.ok]
    new = sorted(set(cur.variants) - set(base.variants))
    head = "✅ no regression" if not failed else f"❌ {len(failed)} regression{'s' if len(failed) != 1 else ''}"
    lines = [
        f"## prunebench compare: {head}",
        "",
        f"- Baseline: `{base.path}` ({base.kind}, created {base.created}, commit {base.commit})",
        f"- Current: `{cur.path}` ({cur.kind}, created {cur.created}, commit {cur.commit})",
        f"- Tolerances: top-1 drop ≤ {tol.max_acc_drop:g} pts; latency ({tol.latency_metric}) ratio to the same-run "
        "reference may grow ≤ "
        f"{100 * tol.max_latency_ratio_regression:g} %; params {tol.params}; MACs {tol.macs}"
        + (f"; absolute medians may grow ≤ {100 * tol.max_latency_regression:g} %" if tol.absolute_latency else
           "; absolute times not compared")
        + ("; missing cells allowed" if tol.allow_missing else ""),
        f"- {len(checks)} checks, {len(failed)} failed" + (f"; new variants in CURRENT: {', '.join(new)}" if new else ""),
        *[f"- Note: {n} (allowed by --allow-{'different' if 'different experiments' in n else 'missing'})"
          for n in notes],
        "",
    ]
    header = ["Result", "Check", "Variant", "Cell", "Baseline", "Current", "Change", "Limit", "Note"]

    def table(rows: list[Check]) -> list[str]:
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for c in rows:
            out.append("| " + " | ".join([("✅" if c.ok else "❌"), c.kind, f"`{c.variant}`", c.cell, c.baseline,
                                          c.current, c.change, c.limit, c.note]) + " |")
        return out

    if failed:
        lines += ["### Regressions", ""] + table(failed) + [""]
    passed = [c for c in checks if c.ok]
    if passed:
        lines += ["<details><summary>All passing checks</summary>", ""] + table(passed) + ["", "</details>", ""]
    if not checks:
        lines += ["No comparable entries: the two files share no variant ids.", ""]
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the flags of ``prunebench compare`` (BASELINE.json, CURRENT.json, tolerances, --markdown, ...) to ``p``."""
    p.add_argument("baseline", metavar="BASELINE.json", help="results.json or bench --json output of the reference")
    p.add_argument("current", metavar="CURRENT.json", help="the same, for the change under test")
    p.add_argument("--tolerances", metavar="TOML", help="file with a [compare] table (keys as the flags, with _)")
    p.add_argument("--max-acc-drop", type=float, help="top-1 points a variant may lose (default 0.5)")
    p.add_argument("--max-latency-ratio-regression", type=float,
                   help="relative growth allowed for variant/reference median, e.g. 0.10 = 10 %% (default 0.10)")
    p.add_argument("--params", help="'exact' (default) or relative tolerance, e.g. 0.01")
    p.add_argument("--macs", help="'exact' (default) or relative tolerance, e.g. 0.01")
    p.add_argument("--absolute-latency", action="store_true", default=None,
                   help="also compare absolute medians (only meaningful on the same machine)")
    p.add_argument("--max-latency-regression", type=float, help="with --absolute-latency: allowed growth (default 0.10)")
    p.add_argument("--allow-missing", action="store_true", default=None,
                   help="a variant/cell missing from CURRENT is a note, not a failure")
    p.add_argument("--allow-different", action="store_true", default=None,
                   help="compare results of different models or datasets (normally a usage error)")
    p.add_argument("--reference", help="variant id to use as the latency reference for every variant")
    p.add_argument("--latency-metric", choices=LATENCY_METRICS,
                   help="median_ms (wall clock, default) or cpu_median_ms (CPU time per call: steadier on shared CPUs)")
    p.add_argument("--markdown", metavar="FILE", help="write the Markdown summary here (e.g. for a PR comment)")
    p.add_argument("--quiet", action="store_true", help="do not print the summary")


def run_cli(args: argparse.Namespace) -> int:
    """``prunebench compare``: print (and with ``--markdown`` write) the verdict. Returns 0 if every check passed, 1 if
    not; usage problems raise :class:`PrunebenchError`."""
    tol = load_tolerances(args.tolerances, {
        "max_acc_drop": args.max_acc_drop, "max_latency_ratio_regression": args.max_latency_ratio_regression,
        "params": args.params, "macs": args.macs, "absolute_latency": args.absolute_latency,
        "max_latency_regression": args.max_latency_regression, "allow_missing": args.allow_missing,
        "allow_different": args.allow_different,
        "reference": args.reference, "latency_metric": args.latency_metric,
    })
    base, cur = load(args.baseline, tol.latency_metric), load(args.current, tol.latency_metric)
    if tol.reference and tol.reference not in base.variants:
        raise PrunebenchError(f"--reference {tol.reference!r} is not a variant of {base.path}")
    notes = check_comparable(base, cur, tol)
    checks = compare(base, cur, tol)
    md = render_markdown(base, cur, tol, checks, notes)
    if args.markdown:
        try:
            write_text(args.markdown, md)
        except OSError as e:
            raise PrunebenchError(f"cannot write {args.markdown}: {e.strerror}") from None
    if not args.quiet:
        print(md)
    return 0 if all(c.ok for c in checks) else 1
