"""How fast the app and the CLI answer, and what they cost while idle: figures, not a test.

Every figure is taken in fresh processes (``bench/speed_child.py``, one mode per run). Where a
baseline makes sense the measured and the baseline commands alternate (A B, B A, …) and the ratio
of their medians is the figure: the machine is shared and noisy, so ratios matter and absolute
numbers are secondary. Sections (``--only``):

- ``cold``: cold start to a painted answer. Parent ``time.time()`` just before ``Popen`` to the
  child's ``time.time()`` at the verdict banner's first Paint after ``analysisChanged``, and at the
  plan view's first Paint after the first ``planChanged`` (the presenter emits them apart: the plan
  is its own task), ``run_app`` on the shipped sample; against a floor: ``import PySide6.QtWidgets,
  pyqtgraph`` and an empty ``QMainWindow``'s first Paint. Target: ratio ≤ 1.3.
- ``stall``: the longest gap between the ticks of a 10 ms ``QTimer`` from ``window.start(path)`` (the
  window already shown and painted) to 0.3 s after verdict and plan painted, per model. Target ≤ 100 ms.
- ``plan``: read, analyze and plan as ``advisor plan --json`` does them (after ``import advisor.cli``),
  the first call and a warm second one in the same process; and the whole ``advisor plan --json`` on
  the 70B folder against ``python -c "import advisor.cli"``. Targets: ratio ≤ 1.3, own work ≤ 0.1 s.
- ``graph``: the same on chains of MatMul → Add → Relu of ~1k..30k nodes; the first call's imports
  are paid on the sample beforehand, so per-node times compare. Target: µs/node at 30k ≤ 2× at 1k.
- ``idle``: CPU (``/proc/self/stat`` utime + stime) and ``VmRSS`` drift over ``--idle-seconds`` after
  a 10 s settle, the "Live memory" tab shown, then the "Plan" tab; then a bare pyqtgraph plot updated
  at the app's refresh rate. Run one after another (2 cores). Targets: ≤ 0.5 % of a core, < 1 MiB.
- ``read``: ``VmHWM`` (reset through ``clear_refs``) above ``VmRSS`` while ``read_onnx`` and
  ``load_skeleton`` read a ~650 MB ONNX with embedded weights. Target < 8 MiB.

Children get a temporary ``XDG_CONFIG_HOME`` (QSettings) and ``ADVISOR_DATA_DIR`` each, and share one
``ADVISOR_CACHE_DIR`` (``bench/out/speed_cache``: the host bandwidth measured once, as a real user has
it); one untimed run comes first (it also writes the bytecode caches an installed app has:
``PYTHONDONTWRITEBYTECODE`` is dropped for the children). ``QT_QPA_PLATFORM`` defaults to
``offscreen``. Models are built once into ``bench/out/speed_models/`` (sparse files where the
format allows).

Usage: ``.venv/bin/python bench/speed.py [--quick] [--repeat N] [--only cold,stall,plan,graph,idle,read]
[--idle-seconds 180] [--json PATH]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
U = TypeVar("U")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CHILD = Path(__file__).with_name("speed_child.py")
OUT = REPO / "bench" / "out"
MODELS = OUT / "speed_models"
CACHE = OUT / "speed_cache"
SAMPLE = REPO / "resources" / "samples" / "sample-convnet.onnx"
SECTIONS = ("cold", "stall", "plan", "graph", "idle", "read")
CHILD_TIMEOUT_S = 120.0
SETTLE_S = 10.0
EMBEDDED_MB = 656  # read_speed.build rounds up to whole 64 MiB layers: 10 layers, 671 MB
GRAPH_NODES = (1_000, 3_000, 10_000, 30_000)
GRAPH_WIDTH = 64  # each MatMul weight is 64 × 64 float32
# NOTE: the live plot's default window is 5 min (advisor/ui/memory_plot.py DEFAULT_WINDOW_S) at one
# sample a second (settings refresh_ms 1000): 300 points once the window has filled.
BASELINE_POINTS = 300

TARGETS = {"cold_ratio": 1.3, "stall_ms": 100.0, "graph_ratio": 2.0, "cli_ratio": 1.3, "cli_own_s": 0.1,
           "idle_cpu_pct": 0.5, "idle_drift_mib": 1.0, "read_added_mib": 8.0}


@dataclass(frozen=True)
class Model:
    """A model the bench opens; ``nodes`` for the synthetic graphs."""

    name: str
    path: Path
    nodes: int | None = None


@dataclass(frozen=True)
class Outcome:
    """One child: its JSON line (None when it failed), parent-side start and wall time."""

    doc: dict[str, Any] | None
    started: float
    wall_s: float


# --- models ------------------------------------------------------------------------------------


def _built(path: Path, make: Callable[[Path], object]) -> Path:
    """``path``, built by ``make`` into a temporary name first so an interrupted build is never reused."""
    if path.exists():
        return path
    print(f"building {path.relative_to(REPO)} ...", flush=True)
    partial = path.with_name(path.name + ".partial")
    if partial.is_dir():
        shutil.rmtree(partial)
    partial.unlink(missing_ok=True)
    make(partial)
    partial.rename(path)
    return path


def build_graph(path: Path, n_nodes: int) -> None:
    """A chain of ``n_nodes // 3`` blocks MatMul(x, W_i) → Add(b_i) → Relu, 64 × 64 float32 weights."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, x = [], [], "x"
    for i in range(n_nodes // 3):
        w, b = f"layers.{i}.weight", f"layers.{i}.bias"
        inits.append(numpy_helper.from_array(
            (rng.standard_normal((GRAPH_WIDTH, GRAPH_WIDTH)) * 0.1).astype(np.float32), w))
        inits.append(numpy_helper.from_array(np.zeros(GRAPH_WIDTH, np.float32), b))
        nodes += [helper.make_node("MatMul", [x, w], [f"m{i}"]), helper.make_node("Add", [f"m{i}", b], [f"a{i}"]),
                  helper.make_node("Relu", [f"a{i}"], [f"r{i}"])]
        x = f"r{i}"
    graph = helper.make_graph(nodes, f"chain_{n_nodes}",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", GRAPH_WIDTH])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["batch", GRAPH_WIDTH])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="bench/speed.py")
    model.ir_version = 10  # onnxruntime refuses onnx 1.23's default IR 14
    onnx.save(model, str(path))


def build_gguf_8b(path: Path) -> None:
    """A Llama-3-8B-shaped Q4_K GGUF whose tensor data is a sparse hole."""
    from tests.builders.gguf_models import llama_gguf_specs, sparse_gguf

    specs = llama_gguf_specs(n_layers=32, hidden=4096, n_heads=32, n_kv_heads=8, vocab=128256, ff=14336,
                             qtype="Q4_K", embd_type="Q4_K", out_type="Q6_K")
    meta = {"{arch}.block_count": 32, "{arch}.context_length": 8192, "{arch}.embedding_length": 4096,
            "{arch}.feed_forward_length": 14336, "{arch}.attention.head_count": 32,
            "{arch}.attention.head_count_kv": 8, "{arch}.rope.dimension_count": 128}
    sparse_gguf(path, specs, metadata=meta)


def build_embedded(path: Path) -> None:
    from bench.read_speed import build

    build(path, EMBEDDED_MB)


def build_folder(path: Path) -> None:
    from tests.builders.safetensors_models import llama_folder

    llama_folder(path)  # defaults: Llama-3-70B, 30 sparse bf16 shards


def model(name: str) -> Model:
    """The named model, built into :data:`MODELS` the first time."""
    MODELS.mkdir(parents=True, exist_ok=True)
    if name == "sample-convnet":
        if not SAMPLE.exists():
            subprocess.run([sys.executable, str(REPO / "packaging" / "make_sample_model.py")], check=True)
        return Model(name, SAMPLE)
    if name == "llama3-70b-folder":
        return Model(name, _built(MODELS / "llama3-70b-sparse", build_folder))
    if name == "onnx-embedded-656mb":
        return Model(name, _built(MODELS / f"embedded_{EMBEDDED_MB}mb.onnx", build_embedded))
    if name == "gguf-8b-q4k":
        return Model(name, _built(MODELS / "llama3-8b-q4_k-sparse.gguf", build_gguf_8b))
    nodes = int(name.removeprefix("graph-").removesuffix("k")) * 1000
    path = _built(MODELS / f"chain_{nodes}.onnx", lambda p: build_graph(p, nodes))
    return Model(name, path, nodes // 3 * 3)


REAL_MODELS = ("sample-convnet", "llama3-70b-folder", "onnx-embedded-656mb", "gguf-8b-q4k")
GRAPHS = tuple(f"graph-{n // 1000}k" for n in GRAPH_NODES)


# --- children ----------------------------------------------------------------------------------


def run_child(cmd: Sequence[str], label: str, timeout_s: float = CHILD_TIMEOUT_S, *, parse: bool = True) -> Outcome:
    """Run ``cmd`` fresh with isolated settings; on failure print its stderr tail and return ``doc=None``."""
    with tempfile.TemporaryDirectory(prefix="speed-config-") as config, \
            tempfile.TemporaryDirectory(prefix="speed-data-") as data:
        env = {**os.environ, "XDG_CONFIG_HOME": config, "ADVISOR_DATA_DIR": data, "ADVISOR_CACHE_DIR": str(CACHE)}
        env.setdefault("QT_QPA_PLATFORM", "offscreen")
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # bytecode caches used, as an installed app has them
        started = time.time()
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                cwd=REPO)
        try:
            out, err = proc.communicate(timeout=timeout_s)
            why = f"exit code {proc.returncode}" if proc.returncode else ""
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            why = f"timed out after {timeout_s:g} s"
        wall = time.perf_counter() - t0
    doc: dict[str, Any] | None = {}
    if not why and parse:
        try:
            doc = json.loads(out.strip().splitlines()[-1])
        except (IndexError, ValueError):
            why = "no JSON line on stdout"
    if why:
        tail = "\n".join("    " + line for line in (err or out or "").strip().splitlines()[-12:])
        print(f"  ! {label}: {why}\n{tail}", flush=True)
        doc = None
    return Outcome(doc, started, wall)


def child(mode: str, *args: object) -> list[str]:
    return [sys.executable, str(CHILD), mode, *(str(a) for a in args)]


def alternate(a: Callable[[], T | None], b: Callable[[], U | None], repeat: int) -> tuple[list[T], list[U]]:
    """``repeat`` runs of each, in the order A B, B A, A B, …; the figures of those that succeeded."""
    xs: list[T] = []
    ys: list[U] = []

    def run_a() -> None:
        if (x := a()) is not None:
            xs.append(x)

    def run_b() -> None:
        if (y := b()) is not None:
            ys.append(y)

    for i in range(repeat):
        for step in (run_a, run_b) if i % 2 == 0 else (run_b, run_a):
            step()
    return xs, ys


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


# --- printing ----------------------------------------------------------------------------------


def fmt(value: float | None, spec: str = ".3f") -> str:
    return "—" if value is None else format(value, spec)


def verdict(value: float | None, target: float, *, below: bool = False) -> str:
    """Whether ``value`` meets ``target`` (≤, or < with ``below``)."""
    if value is None:
        return "n/a"
    ok = value < target if below else value <= target
    return "ok" if ok else "MISSED"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print a left-aligned first column and right-aligned others."""
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    for r in (header, *rows):
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)]
        print("  " + "  ".join(cells).rstrip())


def title(text: str) -> None:
    print(f"\n== {text}", flush=True)


# --- sections ----------------------------------------------------------------------------------


def section_cold(repeat: int) -> dict[str, Any]:
    sample = model("sample-convnet")
    title(f"Cold start to a painted answer ({sample.path.name}), {repeat} runs each, alternated")

    def floor() -> float | None:
        o = run_child(child("floor"), "floor")
        return None if o.doc is None else float(o.doc["painted"]) - o.started

    def app() -> tuple[float, float] | None:
        o = run_child(child("cold", sample.path), "cold start")
        return None if o.doc is None else (float(o.doc["verdict"]) - o.started, float(o.doc["plan"]) - o.started)

    floor()  # untimed: the page cache, .pyc files
    app()
    app_runs, floor_s = alternate(app, floor, repeat)
    verdict_s, plan_s = [v for v, _ in app_runs], [p for _, p in app_runs]
    base = median(floor_s)
    r_verdict, r_plan = ratio(median(verdict_s), base), ratio(median(plan_s), base)
    target = TARGETS["cold_ratio"]
    table(["", "median s", "min s", "/ floor", f"≤ {target}"], [
        ["floor: Qt + pyqtgraph, empty window painted", fmt(base), fmt(min(floor_s, default=None)), "", ""],
        ["app: verdict painted (after analysisChanged)", fmt(median(verdict_s)), fmt(min(verdict_s, default=None)),
         fmt(r_verdict, ".2f"), verdict(r_verdict, target)],
        ["app: plan painted (after the first planChanged)", fmt(median(plan_s)), fmt(min(plan_s, default=None)),
         fmt(r_plan, ".2f"), verdict(r_plan, target)],
    ])
    return {"floor_s": floor_s, "verdict_s": verdict_s, "plan_s": plan_s, "ratio_verdict": r_verdict,
            "ratio_plan": r_plan}


def section_stall(repeat: int) -> dict[str, Any]:
    names = REAL_MODELS + GRAPHS
    title(f"Longest event-loop stall opening a model (10 ms timer; start → verdict and plan painted + 0.3 s), "
          f"{repeat} runs")
    results: dict[str, Any] = {}
    rows = []
    for m in (model(n) for n in names):
        runs = [o.doc for o in (run_child(child("stall", m.path), f"stall {m.name}") for _ in range(repeat))
                if o.doc is not None]
        gaps = [r["max_gap_ms"] for r in runs]
        worst = max(runs, key=lambda r: r["max_gap_ms"]) if runs else None
        results[m.name] = {"max_gap_ms": gaps, "runs": runs}
        rows.append([m.name, fmt(median(gaps), ".0f"), fmt(max(gaps, default=None), ".0f"),
                     fmt(worst["at_ms"] if worst else None, ".0f"), fmt(median([r["verdict_ms"] for r in runs]), ".0f"),
                     fmt(median([r["plan_ms"] for r in runs]), ".0f"),
                     fmt(median([r["over_50ms"] for r in runs]), ".0f"),
                     verdict(max(gaps, default=None), TARGETS["stall_ms"])])
    table(["model", "max gap ms, median", "worst", "worst at ms", "verdict at ms", "plan at ms", "gaps > 50 ms",
           f"≤ {TARGETS['stall_ms']:.0f} ms"], rows)
    return results


def _plan_runs(m: Model, repeat: int, prime: Path | None = None) -> dict[str, dict[str, float | None]]:
    """Median of each phase over ``repeat`` plan children, for the first and the warm call."""
    extra = [prime] if prime is not None else []
    docs = [o.doc for o in (run_child(child("plan", m.path, *extra), f"plan {m.name}") for _ in range(repeat))
            if o.doc is not None]
    return {run: {k: median([d[run][k] for d in docs]) for k in docs[0][run]} if docs else {}
            for run in ("first", "warm")}


def _ms(d: dict[str, float | None], key: str) -> str:
    value = d.get(key)
    return fmt(None if value is None else value * 1e3, ".1f")


def _phase_row(name: str, r: dict[str, dict[str, float | None]]) -> list[str]:
    f, w = r["first"], r["warm"]
    return [name] + [f"{_ms(f, k)} / {_ms(w, k)}" for k in ("read_s", "target_s", "analyze_s", "plan_s", "total_s")]


PHASE_HEADER = ["model", "read ms", "probe ms", "analyze ms", "plan ms", "total ms"]


def section_plan(repeat: int) -> dict[str, Any]:
    title(f"Read, analyze, plan as `advisor plan --json` does them, first / warm call, median of {repeat}")
    results: dict[str, Any] = {}
    rows = []
    for m in (model(n) for n in REAL_MODELS):
        results[m.name] = r = _plan_runs(m, repeat)
        rows.append(_phase_row(m.name, r))
    table(PHASE_HEADER, rows)
    print("  (first: the imports advisor.cli defers count, in total; probe: this machine as the target)")

    folder = model("llama3-70b-folder")
    advisor = Path(sys.executable).with_name("advisor")
    cmd = [str(advisor)] if advisor.exists() else [sys.executable, "-m", "advisor"]
    plan_cmd = [*cmd, "plan", "--json", str(folder.path)]
    base_cmd = [sys.executable, "-c", "import advisor.cli"]

    def wall(c: list[str], label: str) -> Callable[[], float | None]:
        def one() -> float | None:
            o = run_child(c, label, parse=False)
            return None if o.doc is None else o.wall_s
        return one

    plan_s, base_s = wall(plan_cmd, "advisor plan"), wall(base_cmd, "import advisor.cli")
    plan_s()  # untimed
    base_s()
    xs, ys = alternate(plan_s, base_s, repeat)
    cli_ratio = ratio(median(xs), median(ys))
    own = None if not xs or not ys else statistics.median(xs) - statistics.median(ys)
    print(f"\n  whole process, {repeat} runs each, alternated ({folder.name}):")
    table(["", "median s", "target", ""], [
        ["python -c 'import advisor.cli'", fmt(median(ys)), "", ""],
        ["advisor plan --json <70B folder>", fmt(median(xs)), "", ""],
        ["ratio", fmt(cli_ratio, ".2f"), f"≤ {TARGETS['cli_ratio']}", verdict(cli_ratio, TARGETS["cli_ratio"])],
        ["own work (difference)", fmt(own), f"≤ {TARGETS['cli_own_s']} s", verdict(own, TARGETS["cli_own_s"])],
    ])
    results["cli"] = {"plan_s": xs, "import_s": ys, "ratio": cli_ratio, "own_s": own}
    return results


def section_graph(repeat: int) -> dict[str, Any]:
    sample = model("sample-convnet")
    title(f"Synthetic graphs (MatMul → Add → Relu chains), first / warm call, median of {repeat}")
    results: dict[str, Any] = {}
    rows, per_node = [], {}
    for m in (model(n) for n in GRAPHS):
        assert m.nodes is not None
        results[m.name] = r = _plan_runs(m, repeat, prime=sample.path)
        first, warm = r["first"].get("analyze_s"), r["warm"].get("analyze_s")
        per_node[m.name] = (None if first is None else first / m.nodes * 1e6,
                            None if warm is None else warm / m.nodes * 1e6)
        results[m.name]["nodes"] = m.nodes
        results[m.name]["analyze_us_per_node"] = per_node[m.name]
        rows.append([*_phase_row(f"{m.name} ({m.nodes} nodes)", r),
                     f"{fmt(per_node[m.name][0], '.1f')} / {fmt(per_node[m.name][1], '.1f')}"])
    table([*PHASE_HEADER, "analyze µs/node"], rows)
    print("  (first: imports already paid on the sample in the same process, so only the file is new)")
    lo, hi = per_node[GRAPHS[0]], per_node[GRAPHS[-1]]
    r_first, r_warm = ratio(hi[0], lo[0]), ratio(hi[1], lo[1])
    table(["per-node analyze time, 30k / 1k", "ratio", "target", ""], [
        ["first call", fmt(r_first, ".2f"), f"≤ {TARGETS['graph_ratio']}", verdict(r_first, TARGETS["graph_ratio"])],
        ["warm call", fmt(r_warm, ".2f"), "", ""],
    ])
    results["ratio_first"], results["ratio_warm"] = r_first, r_warm
    return results


def section_idle(idle_s: float) -> dict[str, Any]:
    sample = model("sample-convnet")
    title(f"Idle CPU and RSS drift over {idle_s:.0f} s after a {SETTLE_S:.0f} s settle (sample model open)")
    timeout = CHILD_TIMEOUT_S + 2 * (SETTLE_S + idle_s)
    app = run_child(child("idle", sample.path, SETTLE_S, idle_s), "idle window", timeout).doc
    refresh = int(app["refresh_ms"]) if app else 1000
    base = run_child(child("plotbase", refresh, BASELINE_POINTS, SETTLE_S, idle_s), "idle baseline",
                     CHILD_TIMEOUT_S + SETTLE_S + idle_s).doc
    rows = []
    for label, doc, judged in (("app, Live memory tab (plot visible)", app and app["visible"], True),
                               ("app, Plan tab (plot hidden)", app and app["hidden"], True),
                               (f"baseline: bare PlotWidget, {BASELINE_POINTS} points every {refresh} ms",
                                base and base["baseline"], False)):
        cpu = doc["cpu_pct"] if doc else None
        drift = doc["rss_drift_mib"] if doc else None
        rows.append([label, fmt(cpu, ".2f"), verdict(cpu, TARGETS["idle_cpu_pct"]) if judged else "",
                     fmt(drift, "+.2f"),
                     verdict(None if drift is None else abs(drift), TARGETS["idle_drift_mib"], below=True)
                     if judged else ""])
    table(["", "% of a core", f"≤ {TARGETS['idle_cpu_pct']} %", "RSS drift MiB",
           f"< {TARGETS['idle_drift_mib']:.0f} MiB"], rows)
    return {"app": app, "baseline": base}


def section_read(repeat: int) -> dict[str, Any]:
    big, sample = model("onnx-embedded-656mb"), model("sample-convnet")
    size = big.path.stat().st_size
    title(f"RSS added by reading {big.path.name} ({size / 1e6:.0f} MB, weights embedded), {repeat} runs")
    runs = [o.doc for o in (run_child(child("read", big.path, sample.path), "read") for _ in range(repeat))
            if o.doc is not None]
    added = [r["added_mib"] for r in runs]
    worst = max(added, default=None)
    table(["", "median", "worst", "target", ""], [
        ["read_onnx: VmHWM − VmRSS before, MiB", fmt(median([r["read_onnx_mib"] for r in runs]), ".2f"),
         fmt(max((r["read_onnx_mib"] for r in runs), default=None), ".2f"), "", ""],
        ["load_skeleton: VmHWM − VmRSS before, MiB", fmt(median([r["load_skeleton_mib"] for r in runs]), ".2f"),
         fmt(max((r["load_skeleton_mib"] for r in runs), default=None), ".2f"), "", ""],
        ["both (the larger peak), MiB", fmt(median(added), ".2f"), fmt(worst, ".2f"),
         f"< {TARGETS['read_added_mib']:.0f} MiB", verdict(worst, TARGETS["read_added_mib"], below=True)],
        ["read_onnx ms / load_skeleton ms", fmt(median([r["read_onnx_s"] * 1e3 for r in runs]), ".1f"),
         fmt(median([r["load_skeleton_s"] * 1e3 for r in runs]), ".1f"), "", ""],
    ])
    return {"file_bytes": size, "runs": runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 repeats, 20 s idle")
    parser.add_argument("--repeat", type=int, help="runs of each command (default 5; 3 with --quick)")
    parser.add_argument("--only", help=f"comma-separated sections: {','.join(SECTIONS)} (default: all)")
    parser.add_argument("--idle-seconds", type=float, help="idle measurement per phase (default 180; 20 with --quick)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write every figure to PATH")
    args = parser.parse_args(argv)
    repeat = args.repeat or (3 if args.quick else 5)
    idle_s = args.idle_seconds or (20.0 if args.quick else 180.0)
    only = [s.strip() for s in args.only.split(",")] if args.only else list(SECTIONS)
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    CACHE.mkdir(parents=True, exist_ok=True)
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.platform()}; "
          f"QT_QPA_PLATFORM={os.environ.get('QT_QPA_PLATFORM', 'offscreen')}; repeat {repeat}")
    # Untimed: measures and caches this host's bandwidth once, as a real user's earlier runs did.
    run_child(child("plan", model("sample-convnet").path), "warm-up")
    doc: dict[str, Any] = {"python": platform.python_version(), "cpus": os.cpu_count(), "repeat": repeat,
                           "idle_seconds": idle_s, "targets": TARGETS}
    sections: dict[str, Callable[[], dict[str, Any]]] = {
        "cold": lambda: section_cold(repeat), "stall": lambda: section_stall(repeat),
        "plan": lambda: section_plan(repeat), "graph": lambda: section_graph(repeat),
        "idle": lambda: section_idle(idle_s), "read": lambda: section_read(repeat),
    }
    t0 = time.perf_counter()
    for name in SECTIONS:
        if name in only:
            doc[name] = sections[name]()
    print(f"\n(bench took {time.perf_counter() - t0:.0f} s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
