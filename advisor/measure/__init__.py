"""Measure a model on this machine and hold the measurement against the prediction.

:func:`measure` runs the model once in a child process (:mod:`advisor.measure.child`) under a
hard memory cap (:mod:`advisor.measure.cap`), samples the child's resident set from outside
while it runs (``/proc/PID/status``, every 20 ms, for the live plot), and reads the child's exact
high-water mark at the end. It refuses to start when the prediction does not fit the memory
available now, and it never waits on a child that was cancelled: the child's whole process
group is killed at once. Each finished measurement is stored (:mod:`advisor.measure.store`).

Runtimes: onnxruntime on the CPU (always installed), llama.cpp through llama-cpp-python and
Hugging Face ``generate()`` on PyTorch CPU (when installed; else a message says what to install).
Runs on a GPU are refused with a message that says so.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from advisor.cancel import Cancelled, CancelToken
from advisor.errors import AdvisorError
from advisor.estimator.types import MIB, Estimate, Workload
from advisor.hardware.profile import HardwareProfile
from advisor.readers.profile import ModelProfile
from advisor.units import format_bytes

SAMPLE_SECONDS = 0.02
# Kept free for everything else while a measurement runs: the margin the verdict keeps when it
# plans against RAM (advisor.verdict: max(512 MiB, 10 % of RAM)).
MARGIN_FRACTION = 0.10
MIN_MARGIN_BYTES = 512 * MIB

_ENGINES = {"onnxruntime-cpu": ("onnxruntime", ("onnxruntime",), "pip install onnxruntime"),
            "llama.cpp": ("llama.cpp", ("llama_cpp",), "pip install llama-cpp-python"),
            "pytorch-cpu": ("transformers", ("torch", "transformers"), "pip install torch transformers")}


class MeasureError(AdvisorError):
    """A measurement that could not start or did not finish (the message says why, in one line)."""


@dataclass(frozen=True)
class Measurement:
    """One run of a model on this machine, next to what was predicted for it.

    Attributes:
        model_path / runtime / runtime_version: what ran, with which engine.
        workload: the workload it ran (the estimate's resolved inputs for ONNX).
        machine: this machine's name and CPU, as the store keys it.
        peak_bytes: the child's resident high-water mark above its bare-runtime baseline.
        load_peak_bytes: the same after loading, before the first run.
        predicted: the estimate the run is held against.
        duration_s: wall time of the child, start to exit.
        cap_bytes / cap_kind: the hard cap it ran under.
        samples: ``(seconds since start, resident bytes above the baseline)`` while it ran.
        phases: ``(seconds since start, "load" | "run" | "done")``.
        when: ISO date and time of the run.
        extrapolated_from: when the workload did not fit here, the two smaller runs measured
            instead; ``peak_bytes`` is then their straight line carried to this workload (what
            grows with batch or context — activations, the KV cache — grows linearly in it).
        scale: what was scaled for the smaller runs, in words ("batch 1 and 2 of 64").
        required_bytes: the least memory the run completed in at full speed (``--required``),
            None when not measured.
    """

    model_path: str
    runtime: str
    runtime_version: str
    workload: dict[str, Any]
    machine: str
    peak_bytes: int
    load_peak_bytes: int
    predicted: Estimate
    duration_s: float
    cap_bytes: int
    cap_kind: str
    samples: tuple[tuple[float, int], ...] = ()
    phases: tuple[tuple[float, str], ...] = ()
    when: str = ""
    extrapolated_from: tuple[Measurement, ...] = ()
    scale: str = ""
    required_bytes: int | None = None

    @property
    def error_pct(self) -> float:
        """How far the predicted peak is from the measured one, in % of the measured."""
        return (self.predicted.peak_bytes - self.peak_bytes) / max(1, self.peak_bytes) * 100

    @property
    def inside_range(self) -> bool:
        """Whether the measured peak lies in the prediction's [low, high]."""
        return self.predicted.low_bytes <= self.peak_bytes <= self.predicted.high_bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_path": self.model_path,
            "runtime": self.runtime,
            "runtime_version": self.runtime_version,
            "workload": self.workload,
            "machine": self.machine,
            "measured_peak_bytes": self.peak_bytes,
            "measured_load_peak_bytes": self.load_peak_bytes,
            "predicted_peak_bytes": self.predicted.peak_bytes,
            "predicted_low_bytes": self.predicted.low_bytes,
            "predicted_high_bytes": self.predicted.high_bytes,
            "predicted_required_bytes": self.predicted.required_bytes,
            "measured_required_bytes": self.required_bytes,
            "error_pct": round(self.error_pct, 2),
            "inside_range": self.inside_range,
            "duration_s": round(self.duration_s, 3),
            "cap_bytes": self.cap_bytes,
            "cap_kind": self.cap_kind,
            "when": self.when,
            "samples": [[round(t, 3), b] for t, b in self.samples],
            "phases": [[round(t, 3), p] for t, p in self.phases],
            "extrapolated_from": [{"workload": x.workload, "measured_peak_bytes": x.peak_bytes,
                                   "predicted_peak_bytes": x.predicted.peak_bytes} for x in self.extrapolated_from],
            "scale": self.scale,
        }


@dataclass
class _Run:
    """What the reader thread collects from the child's stdout."""

    phases: list[tuple[float, str]] = field(default_factory=list)
    baseline_rss: int | None = None
    final: dict[str, Any] | None = None


def machine_key(hw: HardwareProfile) -> str:
    """This machine as the store keys it: its name and CPU model."""
    return f"{hw.name} | {hw.cpu.model or '?'} | {hw.cpu.physical_cores or '?'} cores"


def measure(
    profile: ModelProfile,
    workload: Workload,
    runtime: str | None = None,
    hardware: HardwareProfile | None = None,
    *,
    cancel: CancelToken | None = None,
    on_sample: Callable[[float, int], None] | None = None,
    on_phase: Callable[[float, str], None] | None = None,
    available_bytes: int | None = None,
    store: bool = True,
    cap_bytes: int | None = None,
    extrapolate: bool = True,
    required: bool = False,
) -> Measurement:
    """Run ``profile`` under ``workload`` on this machine and measure its peak memory.

    Args:
        hardware: this machine's profile (probed when None); the prediction is made for it.
        cancel: set it to stop the run at once (raises :class:`~advisor.cancel.Cancelled`).
        on_sample: called from this thread with ``(seconds, resident bytes above baseline)``.
        on_phase: called with ``(seconds, phase)`` as the child loads, runs and ends.
        available_bytes: memory available now (read from the system when None).
        store: keep the finished measurement in the user's data folder.
        cap_bytes: a tighter hard cap than what is available now less the margin.
        extrapolate: when the workload does not fit here, measure two smaller ones (batch 1 and
            2, or two shorter contexts) and carry their line to it, instead of refusing.
        required: also find the least memory the run completes in at full speed, by running it
            again under tighter cgroup caps (:func:`_required_search`; needs a memory cgroup).

    Raises:
        MeasureError: the runtime is not installed or not supported here, the prediction does
            not fit what is available now, or the run failed (killed by the cap, an error).
        Cancelled: ``cancel`` was set; the child was killed.
    """
    from advisor.analysis import analyze

    if hardware is None:
        from advisor.hardware.probe import probe

        hardware = probe()
    analysis = analyze(profile, hardware, workload, runtime, learn=False)
    runtime, est = analysis.runtime, analysis.estimate
    spec = _spec(profile, analysis.workload, runtime, est, hardware)
    try:
        room = _cap_for(profile, est, hardware, available_bytes)
    except MeasureError:
        smaller = (_smaller_workloads(profile, analysis.workload, est, runtime, hardware, available_bytes)
                   if extrapolate else None)
        if smaller is None:
            raise
        return _extrapolate(profile, analysis.workload, runtime, est, hardware, smaller, cancel=cancel,
                            on_sample=on_sample, on_phase=on_phase, available_bytes=available_bytes, store=store,
                            cap_bytes=cap_bytes)
    cap_bytes = room if cap_bytes is None else min(cap_bytes, room)
    if required:
        from advisor.measure.cap import can_make_cgroup

        if not can_make_cgroup():
            raise MeasureError(f"{profile.path}: measuring the required memory needs a memory cgroup (run as "
                               "root, or in a delegated cgroup v2 subtree); without --required the peak is measured")
    run = _run_child(spec, cap_bytes, cancel=cancel, on_sample=on_sample, on_phase=on_phase,
                     path=profile.path)
    m, samples, phases, duration, cap_kind = run.final, run.samples, run.phases, run.duration, run.cap_kind
    needed = _required_search(profile, spec, cap_bytes, cancel) if required else None
    measurement = Measurement(
        model_path=profile.path, runtime=runtime, runtime_version=str(m.get("runtime_version", "?")),
        workload=workload_key(analysis.workload, est), machine=machine_key(hardware),
        peak_bytes=int(m["peak_bytes"]), load_peak_bytes=int(m.get("load_peak_bytes", 0)), predicted=est,
        duration_s=duration, cap_bytes=cap_bytes, cap_kind=cap_kind, samples=samples, phases=phases,
        when=time.strftime("%Y-%m-%dT%H:%M:%S"), required_bytes=needed,
    )
    if store:
        from advisor.measure.store import save

        save(profile, measurement)
    return measurement


def _smaller_workloads(profile: ModelProfile, workload: Workload, est: Estimate, runtime: str,
                       hardware: HardwareProfile, available: int | None,
                       ) -> tuple[tuple[Workload, Workload], tuple[int, int, int], str] | None:
    """Two smaller workloads of the same run — the largest power-of-two batch (or context) below
    the full one that fits here, and half of it — the sizes they and the full one have, and in
    words what was scaled; None when nothing smaller fits or nothing scales.

    The larger the two, the less the line between them is bent by what does not scale (the
    runtime's fixed part, the arena's power-of-two growth).
    """
    from advisor.estimator import estimate

    if profile.arch is not None:  # an LLM: the context (the KV cache and compute buffers grow with it)
        from advisor.estimator.runtimes.llamacpp import llamacpp_context

        full, _ = llamacpp_context(profile.arch, workload)

        def at(n: int) -> Workload:
            return replace(workload, context=n, seq_len=None)
        what, floor = "context", 256
    else:
        shapes = dict(est.resolved_inputs)
        names = profile.open_batch_inputs(shapes)
        firsts = {shapes[n][0] for n in names}
        if len(firsts) != 1:
            return None
        full = firsts.pop()

        def at(n: int) -> Workload:
            return replace(workload, batch=n, input_shapes={**shapes, **{k: (n, *shapes[k][1:]) for k in names}})
        what, floor = "batch", 1
    n = 1 << max(0, (full - 1).bit_length() - 1)  # the largest power of two below full
    while n >= 2 * floor:
        try:
            _cap_for(profile, estimate(profile, at(n), runtime, hardware), hardware, available)
        except (MeasureError, AdvisorError):
            n //= 2
            continue
        a, b = n // 2, n
        unit = " tokens" if what == "context" else ""
        return (at(a), at(b)), (a, b, full), f"{what} {a} and {b} of {full}{unit}"
    return None


def _extrapolate(profile: ModelProfile, workload: Workload, runtime: str, est: Estimate, hardware: HardwareProfile,
                 smaller: tuple[tuple[Workload, Workload], tuple[int, int, int], str], **kw: Any) -> Measurement:
    (w1, w2), (x1, x2, full), scale = smaller
    m1, m2 = (measure(profile, w, runtime, hardware, extrapolate=False, **kw) for w in (w1, w2))
    slope = (m2.peak_bytes - m1.peak_bytes) / (x2 - x1)
    peak = int(m2.peak_bytes + slope * (full - x2))
    load = max(m1.load_peak_bytes, m2.load_peak_bytes)
    out = Measurement(
        model_path=profile.path, runtime=runtime, runtime_version=m2.runtime_version,
        workload=workload_key(workload, est), machine=machine_key(hardware), peak_bytes=peak, load_peak_bytes=load,
        predicted=est, duration_s=m1.duration_s + m2.duration_s, cap_bytes=m2.cap_bytes, cap_kind=m2.cap_kind,
        samples=m2.samples, phases=m2.phases, when=time.strftime("%Y-%m-%dT%H:%M:%S"), extrapolated_from=(m1, m2),
        scale=scale,
    )
    if kw.get("store", True):
        from advisor.measure.store import save

        save(profile, out)
    return out


def workload_key(workload: Workload, est: Estimate) -> dict[str, Any]:
    """The workload as it ran: with ONNX inputs resolved to the shapes the estimate used."""
    doc = workload.to_dict()
    if est.resolved_inputs:
        doc["input_shapes"] = {k: list(v) for k, v in sorted(est.resolved_inputs.items())}
    return doc


def _spec(profile: ModelProfile, workload: Workload, runtime: str, est: Estimate,
          hardware: HardwareProfile) -> dict[str, Any]:
    if profile.path.startswith("hf:"):
        raise MeasureError(f"{profile.path}: read from the Hub without its weights; download it to measure it "
                           "(measuring runs the model here)")
    if runtime not in _ENGINES:
        raise MeasureError(f"{profile.path}: measuring {runtime} runs is not supported here yet "
                           f"(advisor measure runs onnxruntime-cpu, llama.cpp and pytorch-cpu on the CPU)")
    engine, modules, install = _ENGINES[runtime]
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise MeasureError(f"{profile.path}: measuring {runtime} needs {' and '.join(missing)}, not installed in "
                           f"this Python ({install})")
    if est.device != "cpu":
        raise MeasureError(f"{profile.path}: measuring on the {est.device.upper()} is not supported yet; "
                           "measure the CPU run (--runtime onnxruntime-cpu, or llama.cpp with --gpu-layers 0)")
    if engine == "onnxruntime":
        dtypes = {i.name: i.dtype for i in profile.inputs}
        inputs = {name: {"shape": list(shape), "dtype": _numpy_dtype(dtypes.get(name, "float32"))}
                  for name, shape in est.resolved_inputs.items()}
        return {"engine": engine, "model": profile.load_path, "inputs": inputs, "runs": 2}
    if engine == "transformers":
        from advisor.estimator.runtimes.pytorch import hf_lengths

        if profile.arch is None or profile.format != "safetensors":
            raise MeasureError(f"{profile.path}: measuring pytorch-cpu runs a Hugging Face model folder "
                               "(config.json + safetensors)")
        if workload.weight_dtype is not None:
            raise MeasureError(f"{profile.path}: measuring {workload.weight_dtype} weights is not supported; "
                               "measure the model as stored")
        prompt, context, _ = hf_lengths(profile.arch, workload)
        return {"engine": engine, "model": profile.load_path, "batch": max(1, workload.batch), "prompt": prompt,
                "new": max(1, context - prompt), "vocab": profile.arch.vocab_size or 32000}
    from advisor.estimator.runtimes.llamacpp import llamacpp_context
    from advisor.estimator.runtimes.llamacpp_plan import plan_llamacpp

    arch = profile.arch
    if arch is None:
        raise MeasureError(f"{profile.path}: the GGUF file names no architecture llama.cpp could run")
    context, _ = llamacpp_context(arch, workload)
    plan = plan_llamacpp(profile, arch, context=context, batch=workload.batch,
                         kv_dtype=workload.kv_cache_dtype or "f16", weight_dtype=None, gpu_layers=0, cuda=False,
                         swa_full=bool(workload.swa_full))
    prompt = min(workload.seq_len or context, context, plan.n_ctx // max(1, plan.n_seq) - 2)
    return {"engine": engine, "model": profile.load_path, "n_ctx": plan.n_ctx, "n_seq": plan.n_seq,
            "prompt": max(1, prompt), "kv": workload.kv_cache_dtype or "f16", "use_mmap": workload.use_mmap,
            "mlock": workload.mlock, "threads": hardware.cpu.physical_cores or os.cpu_count() or 1}


def _numpy_dtype(dtype: str) -> str:
    return {"bfloat16": "float32", "string": "object"}.get(dtype, dtype)


def _cap_for(profile: ModelProfile, est: Estimate, hardware: HardwareProfile, available: int | None) -> int:
    """The hard cap: what is available now less the margin; refuses when the need does not fit."""
    import psutil

    vm = psutil.virtual_memory()
    available = int(vm.available) if available is None else available
    margin = max(MIN_MARGIN_BYTES, int(MARGIN_FRACTION * (hardware.memory_total_bytes or vm.total)))
    cap = available - margin
    if est.required_bytes > cap:
        raise MeasureError(
            f"{profile.path}: not measured — the run needs about {format_bytes(est.required_bytes)} and "
            f"{format_bytes(max(0, available))} is available now ({format_bytes(margin)} of it is kept "
            "free for the rest of the machine); measure a smaller workload, or close programs first")
    return cap


@functools.lru_cache(maxsize=4)
def _bare_address_space(engine: str) -> int:
    """Address space of a child that has imported ``engine`` and done nothing (for RLIMIT_AS)."""
    module = {"onnxruntime": "onnxruntime", "llama.cpp": "llama_cpp", "transformers": "torch, transformers"}[engine]
    code = (f"import numpy, {module}, re; print(re.search(r'VmSize:\\s+(\\d+)', "
            "open('/proc/self/status').read()).group(1))")
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
        return int(out.stdout.strip()) * 1024
    except (subprocess.SubprocessError, ValueError, OSError):
        return 4 * 1024 * MIB  # a generous guess: better to under-cap than to refuse a fine run


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])  # where the advisor package lives
    env["PYTHONPATH"] = os.pathsep.join([root, *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
    return env


@dataclass(frozen=True)
class _Child:
    """One child run: its final report, samples, phases, wall time, the cap's kind, and what
    the cgroup saw at most (bytes charged to it; 0 under RLIMIT_AS)."""

    final: dict[str, Any]
    samples: tuple[tuple[float, int], ...]
    phases: tuple[tuple[float, str], ...]
    duration: float
    cap_kind: str
    usage: int


class _TooSlow(MeasureError):
    """A capped run that ran past its time limit (the cap made it thrash)."""


def _run_child(spec: dict[str, Any], cap_bytes: int, *, cancel: CancelToken | None,
               on_sample: Callable[[float, int], None] | None, on_phase: Callable[[float, str], None] | None,
               path: str, cgroup_only: bool = False, time_limit: float | None = None) -> _Child:
    from advisor.measure.cap import make_cap

    cap = make_cap(cap_bytes)
    if cgroup_only and cap.group is None:
        raise MeasureError(f"{path}: measuring the required memory needs a memory cgroup (run as root, or in a "
                           "delegated cgroup v2 subtree)")
    if cap.kind == "rlimit":
        cap = replace(cap, address_space_bytes=_bare_address_space(spec["engine"]))
    with tempfile.TemporaryDirectory(prefix="advisor-measure-") as tmp:
        spec_file = Path(tmp) / "spec.json"
        spec_file.write_text(json.dumps(spec), encoding="utf-8")
        err_file = Path(tmp) / "stderr.txt"
        run = _Run()
        samples: list[tuple[float, int]] = []
        t0 = time.monotonic()
        with err_file.open("w", encoding="utf-8") as err:
            try:
                child = subprocess.Popen(  # our own interpreter and module
                    [sys.executable, "-m", "advisor.measure.child", str(spec_file)], stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE, stderr=err, env=_child_env(), preexec_fn=cap.preexec, text=True)
            except OSError as exc:
                cap.close()
                raise MeasureError(f"{path}: could not start the measuring process ({exc.strerror})") from None
            reader = threading.Thread(target=_read_child, args=(child, run, t0, on_phase), daemon=True)
            reader.start()
            try:
                while child.poll() is None:
                    if cancel is not None and cancel.cancelled:
                        _kill(child)
                        raise Cancelled()
                    if time_limit is not None and time.monotonic() - t0 > time_limit:
                        _kill(child)
                        raise _TooSlow(f"{path}: the capped run took over {time_limit:.0f} s")
                    rss = _rss(child.pid)
                    if rss is not None and run.baseline_rss is not None:
                        sample = (time.monotonic() - t0, max(0, rss - run.baseline_rss))
                        samples.append(sample)
                        if on_sample is not None:
                            on_sample(*sample)
                    time.sleep(SAMPLE_SECONDS)
            except BaseException:
                _kill(child)
                cap.close()
                raise
            reader.join(timeout=5)
            duration = time.monotonic() - t0
        hit = cap.was_hit()
        usage = cap.max_usage()
        cap.close()
        rc = child.returncode
        final = run.final or {}
        if on_phase is not None:
            on_phase(duration, "done")
        limit = format_bytes(cap_bytes)
        if "error" in final:
            if final.get("oom") or hit:
                raise MeasureError(f"{path}: the run was stopped by its memory cap of {limit} "
                                   f"({final['error']}); nothing else on the machine was touched")
            raise MeasureError(f"{path}: the run failed: {final['error']}")
        if rc != 0 or "peak_bytes" not in final:
            if hit or rc == -signal.SIGKILL:
                raise MeasureError(f"{path}: the run was killed by its memory cap of {limit} "
                                   "(it needed more); nothing else on the machine was touched")
            tail = _last_line(err_file)
            how = f"signal {-rc}" if rc < 0 else f"exit code {rc}"
            raise MeasureError(f"{path}: the measuring process died ({how}){': ' + tail if tail else ''}")
    return _Child(final, tuple(samples), tuple(run.phases), duration, cap.kind, usage)


# NOTE: the pass rule of bench/required.py, which measured the project's required figures: a cap
# passes when the run completes (no OOM kill) in at most 1.5 × its uncapped time; the search stops
# when the passing and failing caps are within 2 % of each other.
REQUIRED_SLOWDOWN = 1.5
REQUIRED_TOLERANCE = 0.02
REQUIRED_MAX_RUNS = 8


def _required_search(profile: ModelProfile, spec: dict[str, Any], room: int, cancel: CancelToken | None) -> int:
    """The least memory ``spec``'s run completes in at full speed, above the bare runtime.

    The run is repeated in fresh cgroups with tighter caps, the model's files dropped from the page
    cache before each (a page is charged to the group that first reads it), bisecting between the
    uncapped run's largest charge (+2 %) and a cap it fails under. What the interpreter and the
    runtime's import charge by themselves (a bare child, measured the same way) is taken off.
    """
    bare = _run_child({"engine": "bare", "import": spec["engine"]}, room, cancel=cancel, on_sample=None,
                      on_phase=None, path=profile.path, cgroup_only=True).usage
    _drop_page_cache(profile)  # the reference is taken the way every capped run starts: the model not cached
    ref = _run_child(spec, room, cancel=cancel, on_sample=None, on_phase=None, path=profile.path, cgroup_only=True)
    if ref.usage <= 0:
        raise MeasureError(f"{profile.path}: the memory cgroup reported no usage; the required memory was not "
                           "measured")
    limit = REQUIRED_SLOWDOWN * ref.duration + 2.0

    def passes(cap_bytes: int) -> bool:
        _drop_page_cache(profile)
        try:
            _run_child(spec, cap_bytes, cancel=cancel, on_sample=None, on_phase=None, path=profile.path,
                       cgroup_only=True, time_limit=limit)
        except Cancelled:
            raise
        except MeasureError:
            return False
        return True

    hi, runs = 0, 0
    for factor in (1.02, 1.25, 1.6):
        runs += 1
        if passes(min(room, int(ref.usage * factor))):
            hi = min(room, int(ref.usage * factor))
            break
    if not hi:
        raise MeasureError(f"{profile.path}: the run did not complete under caps up to 1.6 × its own use; "
                           "the required memory was not measured")
    lo = int(ref.usage * 0.4)
    while runs < REQUIRED_MAX_RUNS and passes(lo):
        hi, lo, runs = lo, int(lo * 0.6), runs + 1
    while runs < REQUIRED_MAX_RUNS and (hi - lo) > REQUIRED_TOLERANCE * hi:
        mid = (lo + hi) // 2
        runs += 1
        if passes(mid):
            hi = mid
        else:
            lo = mid
    return max(0, hi - bare)


def _drop_page_cache(profile: ModelProfile) -> None:
    """Drop the model files' clean pages from the page cache (posix_fadvise DONTNEED)."""
    for name in profile.files or (profile.path,):
        try:
            fd = os.open(name, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass
        finally:
            os.close(fd)


def _read_child(child: subprocess.Popen[str], run: _Run, t0: float,
                on_phase: Callable[[float, str], None] | None) -> None:
    assert child.stdout is not None
    for line in child.stdout:
        try:
            doc = json.loads(line)
        except ValueError:
            continue  # a runtime that printed to stdout: not ours
        if not isinstance(doc, dict):
            continue
        if "phase" in doc:
            t = time.monotonic() - t0
            run.phases.append((t, str(doc["phase"])))
            if "baseline_rss_bytes" in doc:
                run.baseline_rss = int(doc["baseline_rss_bytes"])
            if on_phase is not None:
                on_phase(t, str(doc["phase"]))
        else:
            run.final = doc


def _rss(pid: int) -> int | None:
    import psutil

    try:
        return int(psutil.Process(pid).memory_info().rss)
    except (psutil.Error, OSError):
        return None


def _kill(child: subprocess.Popen[str]) -> None:
    """Kill the child's whole process group now and reap it."""
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        child.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(timeout=10)


def _last_line(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""
