"""The plan: options that fit do fit when re-estimated, and the right options show up for each case."""

from __future__ import annotations

import shlex
from dataclasses import replace
from pathlib import Path

import pytest

from advisor.analysis import Analysis, analyze
from advisor.estimator import estimate, fit
from advisor.estimator.types import Workload
from advisor.hardware.catalog import load_catalog
from advisor.hardware.profile import HardwareProfile
from advisor.plan import make_plan, rank
from advisor.plan.quantize import onnx_fp16, onnx_int4, onnx_int8
from advisor.plan.types import Plan
from advisor.readers import read_model
from tests.builders import gguf_models, onnx_models, safetensors_models
from tests.builders.hardware import edge, gpu_box, laptop

GIB = 1024**3


def assert_fitting_options_fit(plan: Plan, analysis: Analysis) -> None:
    """Re-run estimate + fit on exactly what each option says, and compare."""
    for o in plan.options:
        if o.peak_bytes is None:
            assert not o.fits, o.title
            continue
        assert o.workload is not None and o.runtime is not None and o.hardware is not None, o.title
        profile = o.profile or analysis.model
        again = estimate(profile, o.workload, o.runtime, o.hardware)
        result = fit(again, o.hardware)
        assert again.peak_bytes == o.peak_bytes, o.title
        if o.fits:
            assert result.fits, o.title
            assert o.headroom_bytes is not None and o.headroom_bytes >= 0, o.title
        assert o.how_to.strip(), o.title
        assert o.risk in ("low", "medium", "high") and o.risk_reason, o.title


def assert_ranked(plan: Plan, target: HardwareProfile | None = None) -> None:
    fits = [o.fits for o in plan.options]
    assert fits == sorted(fits, reverse=True), "fitting options come first"
    fitting = [o for o in plan.options if o.fits]
    elsewhere = [o.kind == "cloud" or (target is not None and o.hardware is not None and o.hardware != target)
                 for o in fitting]
    assert elsewhere == sorted(elsewhere), "then what runs on the target before what needs other hardware"
    for group in (False, True):
        quality = [o.quality_rank for o, away in zip(fitting, elsewhere, strict=True) if away is group]
        assert quality == sorted(quality), "then by expected quality loss"


@pytest.fixture(scope="module")
def catalog() -> tuple[HardwareProfile, ...]:
    return load_catalog()


# --------------------------------------------------------------------------- ONNX


def test_onnx_model_that_fits_gets_as_is_first(tmp_path: Path) -> None:
    profile = read_model(onnx_models.mlp(tmp_path / "m.onnx", hidden=256, layers=4))
    analysis = analyze(profile, laptop(16), Workload(batch=4))
    plan = make_plan(analysis, catalog=())
    assert plan.fits_as_is
    assert plan.options[0].kind == "as-is" and plan.options[0].fits
    kinds = {o.kind for o in plan.options}
    assert {"quantize", "prune"} <= kinds
    assert_fitting_options_fit(plan, analysis)
    assert_ranked(plan, analysis.hardware)
    assert not any(o.title.startswith("Unstructured") for o in plan.options)  # zeros keep their bytes
    # fp16 weights save nothing on onnxruntime CPU (it casts them back): left out, and said so
    assert any(n.startswith("left out") and "float16 weights" in n for n in plan.notes)
    assert not any(o.title.startswith("float16 weights") for o in plan.options)
    as_is = plan.options[0].required_bytes
    assert as_is is not None
    for o in plan.options:
        if o.kind in ("quantize", "prune", "offload") and o.required_bytes is not None:
            assert o.required_bytes < as_is, o.title  # nothing offered as a saving that saves nothing
    prune_how = next(o.how_to for o in plan.options if o.kind == "prune")
    assert "ONNX file cannot be pruned in place" in prune_how and "torch.onnx.export" in prune_how


def test_cloud_only_when_it_does_not_fit_or_asked(tmp_path: Path) -> None:

    profile = read_model(onnx_models.mlp(tmp_path / "m.onnx", hidden=256, layers=4))
    analysis = analyze(profile, laptop(16), Workload(batch=4))
    assert analysis.fit.fits
    assert not any(o.kind == "cloud" for o in make_plan(analysis).options)
    asked = make_plan(analysis, catalog=load_catalog(), cloud=True)
    assert any(o.kind == "cloud" for o in asked.options)


def test_onnx_quantized_profiles_are_repriced_not_scaled(tmp_path: Path) -> None:
    profile = read_model(onnx_models.cnn(tmp_path / "cnn.onnx"))
    fp16, dyn, static = onnx_fp16(profile), onnx_int8(profile, static=False), onnx_int8(profile, static=True)
    floats = sum(t.nbytes for t in profile.tensors if t.dtype == "float32")
    assert fp16.weight_bytes_after == profile.weight_bytes - floats // 2
    convs_and_gemm = [t for t in profile.tensors if len(t.shape) >= 2]
    assert set(dyn.touched) == set(static.touched) == {t.name for t in convs_and_gemm}
    assert static.weight_bytes_after == (profile.weight_bytes - sum(t.nbytes for t in convs_and_gemm)
                                         + sum(t.n_elements + 4 + 1 for t in convs_and_gemm))
    assert not onnx_int4(profile).touched  # MatMulNBits takes MatMul weights only; the CNN has none


def test_onnx_batch_too_large_gets_a_smaller_batch_that_fits(tmp_path: Path) -> None:
    profile = read_model(onnx_models.mlp(tmp_path / "m.onnx", hidden=512, layers=3))
    analysis = analyze(profile, laptop(2), Workload(batch=400_000))
    assert not analysis.fit.fits
    plan = make_plan(analysis, catalog=())
    batch = next(o for o in plan.options if o.kind == "batch")
    assert batch.fits and batch.workload is not None
    assert 1 <= batch.workload.batch < 400_000
    bigger = analyze(profile, laptop(2), replace(batch.workload, batch=batch.workload.batch * 2))
    assert not bigger.fit.fits  # it is the largest (within a factor of 2)
    assert plan.options[0].fits
    assert_fitting_options_fit(plan, analysis)
    assert_ranked(plan, analysis.hardware)


def test_onnx_too_big_for_laptop_gets_a_cloud_option(tmp_path: Path, catalog: tuple[HardwareProfile, ...]) -> None:
    profile = read_model(onnx_models.mlp(tmp_path / "m.onnx", hidden=512, layers=3))
    analysis = analyze(profile, laptop(1), Workload(batch=300_000))
    plan = make_plan(analysis, catalog=catalog)
    cloud = [o for o in plan.options if o.kind == "cloud"]
    assert len(cloud) == 1 and cloud[0].fits
    assert cloud[0].price_per_hour_usd is not None and cloud[0].device_id
    cheaper = [h for h in catalog if h.kind == "cloud" and (h.price_per_hour_usd or 0) < cloud[0].price_per_hour_usd]
    for h in cheaper:  # every cheaper instance really is too small
        assert not fit(estimate(profile, analysis.workload, None, h), h).fits
    assert_fitting_options_fit(plan, analysis)


def test_commands_quote_real_paths(tmp_path: Path) -> None:
    folder = tmp_path / "my models"
    folder.mkdir()
    # big enough for int8 to save memory (a tiny one's DynamicQuantizeLinear buffers outweigh it)
    path = onnx_models.mlp(folder / "net's.onnx", hidden=1024, layers=4)
    plan = make_plan(analyze(read_model(path), laptop(16), Workload()), catalog=())
    dyn = next(o for o in plan.options if o.apply_action == "onnx-int8-dynamic")
    assert repr(str(path)) in dyn.how_to  # a Python snippet: a Python string literal
    assert "quantize_dynamic(" in dyn.how_to


def test_rank_puts_fitting_then_local_then_quality_then_cost() -> None:
    from advisor.plan.types import PlanOption

    def opt(kind: str, fits: bool, q: int, price: float | None = None) -> PlanOption:
        return PlanOption(kind=kind, title=kind, peak_bytes=1, fits=fits, headroom_bytes=0, risk="low",  # type: ignore[arg-type]
                          risk_reason="r", how_to="h", quality_rank=q, price_per_hour_usd=price)

    ranked = rank([opt("cloud", True, 0, 3.0), opt("quantize", True, 4), opt("cloud", True, 0, 1.0),
                   opt("as-is", False, 0), opt("offload", True, 0), opt("quantize", True, 1)])
    assert [(o.kind, o.quality_rank, o.price_per_hour_usd) for o in ranked] == [
        ("offload", 0, None), ("quantize", 1, None), ("quantize", 4, None), ("cloud", 0, 1.0),
        ("cloud", 0, 3.0), ("as-is", 0, None),
    ]


# --------------------------------------------------------------------------- LLMs

def test_llama_8b_on_8gb_edge_gets_quantization_and_cloud(
    tmp_path: Path, catalog: tuple[HardwareProfile, ...]
) -> None:
    folder = safetensors_models.llama_folder(
        tmp_path / "Llama 3 8B", n_layers=32, hidden=4096, n_heads=32, n_kv_heads=8, vocab=128256,
        intermediate=14336, n_shards=4,
    )
    analysis = analyze(read_model(folder), edge(8), Workload(context=4096))
    assert not analysis.fit.fits
    plan = make_plan(analysis, catalog=catalog)
    assert not plan.fits_as_is
    quant = [o for o in plan.options if o.kind == "quantize" and o.fits]
    cloud = [o for o in plan.options if o.kind == "cloud" and o.fits]
    assert quant and cloud
    assert any("Q4_K_M" in o.title for o in quant)
    assert all(o.weight_bytes_after and o.weight_bytes_after < analysis.model.weight_bytes for o in quant)
    assert shlex.quote(str(folder)) in next(o for o in quant if "GGUF" in o.title).how_to
    assert cloud[0].price_per_hour_usd and cloud[0].extra.get("catalog_date")
    assert plan.options[0].fits
    assert_fitting_options_fit(plan, analysis)
    assert_ranked(plan, analysis.hardware)


def test_llama_70b_on_one_24gb_gpu_gets_multi_gpu_and_cloud(
    tmp_path: Path, catalog: tuple[HardwareProfile, ...]
) -> None:
    folder = safetensors_models.llama_folder(tmp_path / "llama70b")
    analysis = analyze(read_model(folder), gpu_box(24, n_gpus=1, ram_gib=256), Workload(context=4096))
    assert not analysis.fit.fits
    plan = make_plan(analysis, catalog=catalog)
    multi = [o for o in plan.options if o.kind == "multi-gpu" and o.fits]
    cloud = [o for o in plan.options if o.kind == "cloud" and o.fits]
    assert multi and cloud
    assert any("--tensor-parallel-size" in o.how_to for o in multi)
    assert all(o.workload is not None and o.workload.tensor_parallel >= 2 for o in multi)
    assert cloud[0].price_per_hour_usd is not None and cloud[0].device_id
    assert "vllm serve" in cloud[0].how_to or "llama-server" in cloud[0].how_to
    assert_fitting_options_fit(plan, analysis)
    assert_ranked(plan, analysis.hardware)


def test_llama_70b_on_a_24gb_gpu_with_64gb_ram_gets_a_quantized_gpu_cpu_split(tmp_path: Path) -> None:
    folder = safetensors_models.llama_folder(tmp_path / "llama70b")
    analysis = analyze(read_model(folder), gpu_box(24, n_gpus=1, ram_gib=64), Workload(context=8192))
    plan = make_plan(analysis, catalog=())
    split = [o for o in plan.options if o.kind == "offload" and o.fits]
    assert split, [o.title for o in plan.options]
    best = split[0]
    assert best.runtime == "llama.cpp" and best.workload is not None
    assert best.workload.weight_dtype and 0 < (best.workload.gpu_layers or 0) < 80
    assert f"-ngl {best.workload.gpu_layers}" in best.how_to and "llama-quantize" in best.how_to
    assert best.estimate is not None and best.estimate.host_bytes
    assert plan.options[0] is best  # runs on the machine the person has: ranked before other hardware
    assert_fitting_options_fit(plan, analysis)


def test_llm_context_too_long_gets_a_shorter_context(tmp_path: Path) -> None:
    folder = safetensors_models.llama_folder(
        tmp_path / "llama", n_layers=32, hidden=4096, n_heads=32, n_kv_heads=32, vocab=32000,
        intermediate=11008, n_shards=2,
    )
    profile = read_model(folder)
    long_ctx = analyze(profile, gpu_box(24, ram_gib=64), Workload(context=8192, batch=8))
    plan = make_plan(long_ctx, catalog=())
    shorter = [o for o in plan.options if o.kind == "context"]
    # 32 layers x 32 KV heads x 128 x 2 (K, V) x 2 B = 512 KiB per token: 8 x 8192 tokens is 32 GiB of KV
    # cache alone, beside 13 GB of fp16 weights, on a 24 GB GPU: it cannot fit.
    assert not long_ctx.fit.fits
    assert shorter and shorter[0].fits and shorter[0].workload is not None
    assert shorter[0].workload.context is not None and shorter[0].workload.context < 8192
    assert_fitting_options_fit(plan, long_ctx)


def test_gguf_gets_lower_requantization_and_kv_cache_options(tmp_path: Path) -> None:
    path = gguf_models.tiny_llama_gguf(tmp_path / "tiny.gguf", n_layers=4, hidden=512, ff=1024, qtype="Q8_0")
    profile = read_model(path)
    analysis = analyze(profile, laptop(16), Workload(context=4096))
    plan = make_plan(analysis, catalog=())
    titles = [o.title for o in plan.options]
    assert any("Q4_K_M" in t for t in titles)
    assert not any("to Q8_0" in t for t in titles)  # not lower than what is stored
    assert any("llama-quantize --allow-requantize" in o.how_to for o in plan.options)
    assert any(o.title == "KV cache in q8_0" for o in plan.options)
    assert_fitting_options_fit(plan, analysis)


def _llama8b(path: Path) -> Path:
    return safetensors_models.llama_folder(
        path, n_layers=32, hidden=4096, n_heads=32, n_kv_heads=8, vocab=128256, intermediate=14336, n_shards=4,
    )


def test_llm_that_fits_gets_as_is_first_and_headroom_options(tmp_path: Path) -> None:
    analysis = analyze(read_model(_llama8b(tmp_path / "l8")), gpu_box(24), Workload(context=2048))
    assert analysis.fit.fits
    plan = make_plan(analysis, catalog=())
    assert plan.options[0].kind == "as-is"
    context = next(o for o in plan.options if o.kind == "context")
    assert context.workload is not None and (context.workload.context or 0) > 2048 and context.fits
    assert_fitting_options_fit(plan, analysis)


def test_llm_too_many_sequences_gets_fewer(tmp_path: Path) -> None:
    analysis = analyze(read_model(_llama8b(tmp_path / "l8")), gpu_box(24), Workload(context=8192, batch=64))
    assert not analysis.fit.fits
    plan = make_plan(analysis, catalog=())
    fewer = next(o for o in plan.options if o.kind == "batch")
    assert fewer.fits and fewer.workload is not None and 1 <= fewer.workload.batch < 64
    assert "--max-num-seqs" in fewer.how_to
    assert_fitting_options_fit(plan, analysis)


def test_gguf_70b_on_24gb_gets_layer_offload_and_mmap_advice(tmp_path: Path) -> None:
    specs = gguf_models.llama_gguf_specs(n_layers=80, hidden=8192, n_heads=64, n_kv_heads=8, vocab=128256,
                                         ff=28672, qtype="Q4_K", embd_type="Q4_K", out_type="Q6_K")
    meta = {"{arch}.block_count": 80, "{arch}.context_length": 8192, "{arch}.embedding_length": 8192,
            "{arch}.feed_forward_length": 28672, "{arch}.attention.head_count": 64,
            "{arch}.attention.head_count_kv": 8}
    path = gguf_models.sparse_gguf(tmp_path / "llama 70b.gguf", specs, metadata=meta)
    analysis = analyze(read_model(path), gpu_box(24, ram_gib=64), Workload(context=4096))
    assert not analysis.fit.fits
    plan = make_plan(analysis, catalog=())
    split = next(o for o in plan.options if o.kind == "offload" and o.peak_bytes is not None)
    assert split.fits and split.workload is not None and split.workload.gpu_layers is not None
    assert 0 < split.workload.gpu_layers < 80
    assert f"-ngl {split.workload.gpu_layers}" in split.how_to and shlex.quote(str(path)) in split.how_to
    more = analyze(read_model(path), gpu_box(24, ram_gib=64),
                   replace(split.workload, gpu_layers=split.workload.gpu_layers + 1))
    assert not more.fit.fits  # the largest split that fits
    multi = next(o for o in plan.options if o.kind == "multi-gpu")
    assert "--split-mode layer" in multi.how_to and multi.fits
    assert any("mmap" in o.title.lower() or "mmap" in o.how_to for o in plan.options if o.peak_bytes is None)
    assert_fitting_options_fit(plan, analysis)


def test_moe_gets_experts_on_the_cpu(tmp_path: Path) -> None:
    analysis = analyze(read_model(safetensors_models.mixtral_like(tmp_path / "mixtral", n_layers=8)),
                       gpu_box(24, ram_gib=128), Workload(context=4096))
    # 8 layers x 8 experts x 3 matrices x 14336 x 4096 x 2 B (bf16) = 22.5 GB of experts: more than a
    # 24 GB GPU holds with the rest of the model and its context.
    assert not analysis.fit.fits
    plan = make_plan(analysis, catalog=())
    moe = next(o for o in plan.options if o.title.startswith("MoE experts on the CPU"))
    assert "--override-tensor exps=CPU" in moe.how_to and "--n-cpu-moe" in moe.how_to
    assert moe.profile is not None and moe.profile.weight_bytes < analysis.model.weight_bytes
    assert_fitting_options_fit(plan, analysis)


def test_structured_pruning_that_removes_nothing_is_not_offered(tmp_path: Path) -> None:
    path = gguf_models.tiny_llama_gguf(tmp_path / "tiny.gguf")  # 2 layers: 25 % would drop 0 of them
    plan = make_plan(analyze(read_model(path), laptop(16), Workload(context=1024)), catalog=())
    structured = [o for o in plan.options if o.kind == "prune" and "Structured" in o.title]
    assert structured, "50 % still drops one of the two layers"
    assert all("drop 0 " not in o.title for o in structured)


def test_llama_server_how_tos_start_what_was_estimated(tmp_path: Path) -> None:
    path = gguf_models.tiny_llama_gguf(tmp_path / "tiny.gguf", ctx=2048)
    analysis = analyze(read_model(path), laptop(16), Workload(), runtime="llama.cpp")  # no context given
    plan = make_plan(analysis, catalog=())
    servers = [o for o in plan.options if o.how_to.startswith("llama-server")]
    assert servers
    for o in servers:
        argv = shlex.split(o.how_to.splitlines()[-1])
        assert o.estimate is not None
        n_seq, per_seq = o.estimate.resolved_inputs["tokens"]
        assert n_seq == o.workload.batch
        assert int(argv[argv.index("-c") + 1]) == per_seq * o.workload.batch, o.how_to
    assert any("--parallel" in o.how_to for o in servers)  # 16 GB leaves room for more sequences
