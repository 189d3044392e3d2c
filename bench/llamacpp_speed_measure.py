"""llama.cpp decode (tg32) and prefill (pp128) speed on THIS machine, measured with ``llama-bench``.

    python bench/llamacpp_speed_measure.py                       # every model, 1 and 2 threads
    python bench/llamacpp_speed_measure.py --only mid-gqa-Q4_0   # models whose name contains this
    python bench/llamacpp_speed_measure.py --llama-bench PATH    # another llama-bench binary

Builds the GGUF models that ``bench/llamacpp_accuracy.py`` writes (random weights, a real vocabulary:
``small`` 81 M and ``mid-gqa`` 0.85 B parameters as F16 / Q8_0 / Q4_0) plus one larger Q4_0 model
(``large-gqa``, 1.5 B parameters, ~0.9 GB) defined here so decode is clearly memory-bound, all into
``bench/out/llamacpp``. For each model and thread count it runs

    llama-bench -m MODEL -p 128 -n 32 -t T -r 3 -o json

and keeps llama-bench's mean and standard deviation of tokens/s for the prompt test (``pp128``) and
the generation test (``tg32``). Before each call it waits until the 1-minute load average is below
0.6 (polled every 10 s, at most 5 minutes; a row that started on a busy machine says so in ``load``)
so that other work on the machine does not halve the figures; ``loadavg_start`` is the 1-minute load
average when the call began. Writes ``bench/results/llamacpp_speed_here.json``.

llama-bench comes from llama.cpp's source: ``cmake -B build -DGGML_NATIVE=ON -DLLAMA_CURL=OFF
-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DCMAKE_BUILD_TYPE=Release && cmake --build build
--target llama-bench -j2`` (about 15 min on 2 cores); the source is, for example, the
``vendor/llama.cpp`` folder of the ``llama-cpp-python`` sdist (``pip download --no-deps --no-binary
:all: llama-cpp-python``). The commit recorded is the one llama-bench reports (``build_commit``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from llamacpp_accuracy import MID, SMALL, Shape, model_path  # noqa: E402

# hidden 2560, 20 heads over 4 KV heads (head dim 128), 20 layers, ff 6912, 32k vocab: 1.54 B parameters
# (Q4_0 ~0.87 GB), so decode reads about twice the bytes per token of mid-gqa-Q4_0.
LARGE = {"Q4_0": Shape("large-gqa-Q4_0", 20, 2560, 20, 4, 6912, 32000, "Q4_0")}

MODELS: tuple[Shape, ...] = (
    SMALL["F16"], SMALL["Q8_0"], SMALL["Q4_0"],
    MID["F16"], MID["Q8_0"], MID["Q4_0"],
    LARGE["Q4_0"],
)
THREADS = (1, 2)
PROMPT, GEN, REPS = 128, 32, 3
LOAD_MAX, LOAD_POLL_S, LOAD_WAIT_S = 0.6, 10.0, 300.0
OUT_JSON = ROOT / "bench" / "results" / "llamacpp_speed_here.json"


def loadavg() -> float:
    """The 1-minute load average."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def wait_for_quiet() -> tuple[float, bool]:
    """Wait until the 1-minute load average is below LOAD_MAX; (load average then, whether it got there)."""
    deadline = time.monotonic() + LOAD_WAIT_S
    while (load := loadavg()) >= LOAD_MAX:
        if time.monotonic() >= deadline:
            return load, False
        time.sleep(LOAD_POLL_S)
    return load, True


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "?"


def bench_cmd(bench: Path, model: Path, threads: int) -> list[str]:
    return [str(bench), "-m", str(model), "-p", str(PROMPT), "-n", str(GEN), "-t", str(threads),
            "-r", str(REPS), "-o", "json"]


def run_bench(bench: Path, model: Path, threads: int) -> list[dict[str, Any]]:
    """One llama-bench call; its JSON records (one per test)."""
    proc = subprocess.run(bench_cmd(bench, model, threads), capture_output=True, text=True, timeout=1800,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"llama-bench failed on {model.name} -t {threads}:\n{proc.stderr[-2000:]}")
    records: list[dict[str, Any]] = json.loads(proc.stdout)
    return records


def row_for(shape: Shape, path: Path, threads: int, records: list[dict[str, Any]]) -> dict[str, Any]:
    row: dict[str, Any] = {"model": shape.name.removesuffix(f"-{shape.qtype}"), "quant": shape.qtype,
                           "path": str(path.relative_to(ROOT)), "threads": threads}
    for rec in records:
        if rec.get("n_prompt", 0) > 0 and rec.get("n_gen", 0) == 0:
            key = f"pp{rec['n_prompt']}"
        elif rec.get("n_gen", 0) > 0 and rec.get("n_prompt", 0) == 0:
            key = f"tg{rec['n_gen']}"
        else:
            continue
        row[key] = round(float(rec["avg_ts"]), 2)
        row[f"{key}_stdev"] = round(float(rec["stddev_ts"]), 2)
    if records:
        row["model_bytes"] = records[0].get("model_size")
        row["model_params"] = records[0].get("model_n_params")
        row["repack"] = records[0].get("repack")
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llama-bench", type=Path, default=Path("/tmp/llama.cpp/build/bin/llama-bench"))
    ap.add_argument("--only", default="", help="models whose name contains this text")
    ap.add_argument("--out", type=Path, default=OUT_JSON)
    args = ap.parse_args(argv)
    if not args.llama_bench.exists():
        print(f"no llama-bench at {args.llama_bench}", file=sys.stderr)
        return 2
    shapes = [s for s in MODELS if args.only in s.name]
    t_start = time.perf_counter()
    paths = {s.name: model_path(s) for s in shapes}  # build every model first: writing them loads the CPU
    print(f"models ready in {time.perf_counter() - t_start:.0f} s", flush=True)
    rows: list[dict[str, Any]] = []
    commit = "?"
    for shape in shapes:
        path = paths[shape.name]
        for threads in THREADS:
            load, quiet = wait_for_quiet()
            t0 = time.perf_counter()
            records = run_bench(args.llama_bench, path, threads)
            secs = time.perf_counter() - t0
            commit = str(records[0].get("build_commit", commit)) if records else commit
            row = row_for(shape, path, threads, records)
            row["loadavg_start"] = load
            if not quiet:
                row["load"] = f"1-min load average still {load:.2f} (>= {LOAD_MAX}) after {LOAD_WAIT_S:.0f} s"
            row["seconds"] = round(secs, 1)
            rows.append(row)
            print(f"{shape.name:<16} t={threads}  pp{PROMPT} {row.get(f'pp{PROMPT}', float('nan')):8.2f}  "
                  f"tg{GEN} {row.get(f'tg{GEN}', float('nan')):7.2f} t/s  load {load:.2f}  [{secs:.0f} s]",
                  flush=True)
    result = {
        "cpu": cpu_name(),
        "llama_cpp_commit": commit,
        "command": " ".join(bench_cmd(Path("llama-bench"), Path("MODEL"), 0)).replace("-t 0", "-t T")
        + f"  (T in {', '.join(map(str, THREADS))}; waits for 1-min loadavg < {LOAD_MAX} before each call)",
        "rerun": "python bench/llamacpp_speed_measure.py [--llama-bench PATH]",
        "total_seconds": round(time.perf_counter() - t_start, 1),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
