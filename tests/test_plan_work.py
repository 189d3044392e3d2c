"""The plan's own work: per-model facts computed once, one estimate for targets it does not read,
and a cloud search that rules instances out by arithmetic — each giving the answers a full
search gives."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from advisor.analysis import analyze
from advisor.estimator.file_cache import ModelCache
from advisor.estimator.runtimes import pytorch_parts
from advisor.estimator.types import Workload
from advisor.hardware.catalog import load_catalog
from advisor.plan import make_plan, remote
from advisor.plan.search import Evaluator
from advisor.readers import read_model
from tests.builders import safetensors_models
from tests.builders.hardware import gpu_box, laptop


def _options(plan: Any) -> list[tuple[str, int | None, bool, str | None]]:
    return [(o.title, o.peak_bytes, o.fits, o.device_id) for o in plan.options]


def test_a_model_cache_serves_the_same_object_and_recomputes_for_an_equal_one() -> None:
    cache: ModelCache[int] = ModelCache(4)
    a, b = [1, 2], [1, 2]  # equal, not the same model
    calls: list[int] = []
    assert cache.get_or_make(a, "k", lambda: calls.append(1) or 10) == 10
    assert cache.get_or_make(a, "k", lambda: calls.append(1) or 11) == 10
    assert cache.get_or_make(b, "k", lambda: calls.append(1) or 12) == 12
    assert cache.get_or_make(a, "other", lambda: calls.append(1) or 13) == 13
    assert len(calls) == 3


def test_a_pytorch_estimate_is_made_once_for_every_single_gpu_instance(monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    import advisor.plan.search as search

    model = read_model(safetensors_models.tiny_llama_folder(tmp_path / "m"))
    made: list[str] = []
    real = search.estimate

    def counting(*args: Any) -> Any:
        made.append(args[2])
        return real(*args)

    monkeypatch.setattr(search, "estimate", counting)
    ev = Evaluator()
    boxes = [gpu_box(gib, n_gpus=1) for gib in (8, 16, 24, 80)]
    trials = [ev.trial(model, Workload(context=512), "pytorch-cuda", hw) for hw in boxes]
    assert made == ["pytorch-cuda"]  # one estimate, four fits
    assert len({t.estimate.peak_bytes for t in trials if t}) == 1
    assert len({t.fit.headroom_bytes for t in trials if t}) == 4
    ev.trial(model, Workload(context=512), "llama.cpp", boxes[0])
    ev.trial(model, Workload(context=512), "llama.cpp", boxes[1])
    assert made.count("llama.cpp") == 2  # llama.cpp lays layers out by the GPU's memory: per target


def test_the_cloud_search_finds_the_instance_a_search_without_the_arithmetic_finds(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    folder = safetensors_models.llama_folder(tmp_path / "llama70b")
    catalog = load_catalog()
    analysis = analyze(read_model(folder), laptop(32), Workload(context=4096))
    estimated: list[str] = []
    real = Evaluator.trial

    def counting(self: Evaluator, profile: Any, workload: Any, runtime: str, hardware: Any, **kw: Any) -> Any:
        estimated.append(hardware.device_id or hardware.name)
        return real(self, profile, workload, runtime, hardware, **kw)

    monkeypatch.setattr(Evaluator, "trial", counting)
    fast = make_plan(analysis, catalog=catalog, cloud=True)
    screened = len(estimated)
    estimated.clear()
    monkeypatch.setattr(remote, "_weights_cannot_fit", lambda *a: False)
    slow = make_plan(analysis, catalog=catalog, cloud=True)
    assert _options(fast) == _options(slow)
    assert any(o.kind == "cloud" and o.fits for o in fast.options)
    assert screened < len(estimated)  # instances too small for the weights alone were never estimated


def test_loaded_weight_bytes_are_computed_once_per_profile(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    model = read_model(safetensors_models.tiny_llama_folder(tmp_path / "m"))
    walks: list[str | None] = []
    real = pytorch_parts._torch_weight_bytes

    def counting(profile: Any, weight_dtype: str | None) -> Any:
        walks.append(weight_dtype)
        return real(profile, weight_dtype)

    monkeypatch.setattr(pytorch_parts, "_torch_weight_bytes", counting)
    first = pytorch_parts.torch_weight_bytes(model, "int8")
    assert pytorch_parts.torch_weight_bytes(model, "int8") is first
    pytorch_parts.torch_weight_bytes(model, None)
    changed = replace(model, tensors=model.tensors[:-1])  # a new profile: its own facts
    assert pytorch_parts.torch_weight_bytes(changed, "int8") != first
    assert walks == ["int8", None, "int8"]


def test_a_weighed_cache_drops_the_oldest_past_its_weight_and_keeps_the_newest() -> None:
    from advisor.estimator.file_cache import FileCache

    cache: FileCache[bytes] = FileCache(10, weigh=len, max_weight=10)
    for key, value in (("a", b"1234"), ("b", b"1234"), ("c", b"1234")):
        cache.get_or_make(key, lambda v=value: v)  # type: ignore[misc]
    made: list[str] = []
    cache.get_or_make("a", lambda: made.append("a") or b"x")  # dropped: 12 bytes > 10
    cache.get_or_make("c", lambda: made.append("c") or b"y")  # kept
    assert made == ["a"]
    huge = cache.get_or_make("big", lambda: b"0" * 100)  # over the bound alone: still kept, the rest dropped
    assert cache.get_or_make("big", lambda: b"") is huge


def test_the_onnx_plan_walks_a_graph_once_per_input_shape(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import advisor.plan.search as search
    from advisor.estimator.runtimes import onnxruntime
    from tests.builders import onnx_models

    walks: list[int] = []
    asked: set[tuple[int, str]] = set()
    real_walk, real_estimate = onnxruntime.graph_memory, search.estimate

    def walking(model: Any, **kw: Any) -> Any:
        walks.append(len(model.graph.node))
        return real_walk(model, **kw)

    def estimating(profile: Any, workload: Any, runtime: str, hardware: Any) -> Any:
        asked.add((workload.batch, profile.graph_rewrite))
        return real_estimate(profile, workload, runtime, hardware)

    monkeypatch.setattr(onnxruntime, "graph_memory", walking)
    monkeypatch.setattr(search, "estimate", estimating)
    model = read_model(onnx_models.cnn(tmp_path / "cnn.onnx"))
    analysis = analyze(model, laptop(16), Workload(batch=3))
    plan = make_plan(analysis)
    assert sum(o.kind == "quantize" for o in plan.options) >= 2, [o.title for o in plan.options]
    # the analysis walked batch 3 already; each other batch, and the int8-dynamic rewrite, once;
    # the fp16 / int8 / int4 weights reuse the walk of their batch
    assert len(walks) == len(asked | {(3, "")}), (walks, sorted(asked))
