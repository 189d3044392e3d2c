"""Each constant the onnxruntime-CPU estimate rests on, pinned by a hand-computed figure.

These tests fail when a constant moves (doubling the session cost, quartering the retained-heap
fraction...): the constants model mechanisms measured in bench/ and cited where they are defined,
so changing one must be a deliberate act that updates the figure here with the new measurement.
"""

from __future__ import annotations

from pathlib import Path

from advisor.estimator.runtimes import onnxruntime_weights as ort
from advisor.estimator.types import MIB
from advisor.readers.profile import TensorInfo


def _t(name: str, nbytes: int, *consumers: str, dtype: str = "float32", file: str = "m.onnx") -> TensorInfo:
    return TensorInfo(name=name, dtype=dtype, shape=(nbytes // 4,), n_elements=nbytes // 4, nbytes=nbytes,
                      file=file, consumers=consumers)


def test_cpu_session_cost_is_a_fixed_part_plus_three_kib_per_node() -> None:
    # 11 MiB (a session over a 0.45 MB CNN) + 3 KiB per node (chains of 10 and 3000 nodes).
    assert ort.session_bytes("onnxruntime-cpu", 0) == 11 * MIB
    assert ort.session_bytes("onnxruntime-cpu", 1000) == 11 * MIB + 1000 * 3 * 1024


def test_freed_small_weight_blocks_stay_three_quarters_in_the_heap() -> None:
    # Four 1 MiB MatMul weights: each protobuf copy is freed after pre-packing, blocks <= 32 MiB stay
    # in glibc's heap; 0.75 of them measured resident: 3 MiB retained, resident = stored.
    wt = ort.weight_terms([_t(f"w{i}", MIB, "MatMul") for i in range(4)], "onnxruntime-cpu")
    assert wt.stored_bytes == wt.resident_bytes == 4 * MIB
    assert wt.retained_bytes == 3 * MIB
    assert wt.load_extra_bytes == 3 * MIB
    assert wt.largest_freed_bytes == MIB


def test_a_weight_too_big_for_the_heap_is_a_transient_copy_at_load_only() -> None:
    # 40 MiB > glibc's 32 MiB mmap threshold maximum: its freed copy goes back to the OS at once,
    # so it adds 40 MiB at the load's peak and nothing retained.
    wt = ort.weight_terms([_t("big", 40 * MIB, "Gemm")], "onnxruntime-cpu")
    assert wt.retained_bytes == 0
    assert wt.load_extra_bytes == 40 * MIB
    # Read by Gather only (an embedding): never copied.
    assert ort.weight_terms([_t("emb", 40 * MIB, "Gather")], "onnxruntime-cpu").load_extra_bytes == 0


def test_subgraph_weights_leave_three_more_copies_in_the_heap() -> None:
    # SUBGRAPH_WEIGHT_COPIES = 4: the session of each If/Loop body holds its own copies.
    wt = ort.weight_terms([_t("body.w", MIB, "MatMul")], "onnxruntime-cpu", subgraph_weights=["body.w"])
    assert wt.retained_bytes == int(0.75 * MIB) + 3 * MIB


def test_nchwc_filters_hold_two_extra_copies_small_and_a_transient_when_big() -> None:
    small = ort.weight_terms([_t("f", 2 * MIB, "Conv")], "onnxruntime-cpu", nchwc_weights=["f"])
    assert small.retained_bytes == 2 * 2 * MIB  # NCHWC_SMALL_EXTRA = 2.0
    big = ort.weight_terms([_t("F", 40 * MIB, "Conv")], "onnxruntime-cpu", nchwc_weights=["F"])
    assert big.load_extra_bytes == int(2.5 * 40 * MIB)  # NCHWC_BIG_TRANSIENT = 2.5


def test_half_precision_weights_get_a_float32_copy_that_replaces_them() -> None:
    wt = ort.weight_terms([_t("h", 2 * MIB, "MatMul", dtype="float16")], "onnxruntime-cpu")
    assert wt.upcast_bytes == 2 * MIB
    assert wt.resident_bytes == 4 * MIB  # 2x the fp16 bytes
    # fp16 original (1x) + folded float32 copy (2x) freed, 6 MiB <= 32 MiB: 0.75 of them retained.
    assert wt.retained_bytes == int(0.75 * 6 * MIB)


def test_shared_weight_is_packed_once_per_consumer() -> None:
    assert ort.prepack_copies({"w": ["MatMul", "MatMul"]}, ["w"]) == {"w": 2}
    assert ort.prepack_copies({"w": ["MatMul", "Transpose"]}, ["w"]) == {"w": 2}  # packed + original kept
    assert ort.prepack_copies({"w": ["MatMul"]}, ["w"]) == {}


def test_transformers_on_cpu_adds_its_runtime_allowance(tmp_path: Path) -> None:
    # CPU_RUNTIME_BYTES: loading (lazily imported model code, loader) + the first forward (oneDNN/MKL)
    # measured at 128 MiB on a 0.3 MB model (bench/llm_accuracy.py); a tiny model's overhead is that.
    from advisor.estimator import Workload, estimate
    from advisor.readers import read_model
    from tests.builders import safetensors_models
    from tests.builders.hardware import laptop

    folder = safetensors_models.llama_folder(tmp_path / "l", n_layers=2, hidden=256, n_heads=4, n_kv_heads=2,
                                             vocab=1000, intermediate=512, n_shards=1)
    e = estimate(read_model(folder), Workload(context=256), "pytorch-cpu", laptop(16))
    assert e.overhead_bytes == 128 * MIB


def test_cpu_range_is_the_calibrated_error_band_around_the_estimate(tmp_path: Path) -> None:
    # CPU_RANGE_LOW / HIGH = x0.77 / x1.41 (the calibration cases' 2.5 / 97.5 % error quantiles).
    from advisor.estimator import Workload, estimate
    from advisor.readers.onnx_reader import read_onnx
    from tests.builders import onnx_models
    from tests.builders.hardware import laptop

    path = onnx_models.mlp(tmp_path / "mlp.onnx", hidden=256, layers=2, in_features=256)
    e = estimate(read_onnx(path), Workload(batch=64), "onnxruntime-cpu", laptop(16))
    assert e.low_bytes == max(e.weights_bytes, int(e.peak_bytes * 0.77))
    assert e.high_bytes == int(e.peak_bytes * 1.41)
