"""The headless front: ``advisor analyze|plan|probe|devices|report``.

Every command prints either text a person reads in a terminal or, with ``--json``, one JSON
document (schema in README). Bad input — a corrupt model, an unknown device, a batch of 0 — is
one line on stderr naming the file and the problem, and exit code 2; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from advisor._version import __version__
from advisor.errors import AdvisorError, WorkloadError
from advisor.estimator.types import KV_CACHE_DTYPES, RUNTIMES, Workload

SUBCOMMANDS = ("analyze", "plan", "probe", "devices", "report")
EXIT_OK = 0
EXIT_DOES_NOT_FIT = 1  # only with --check; an internal error is 1 too, but says so on stderr
EXIT_BAD_INPUT = 2


def parse_input_spec(spec: str) -> tuple[str, tuple[int, ...]]:
    """Parse ``NAME=D0,D1,...`` (an empty list means a scalar: ``sr=``)."""
    name, sep, dims = spec.partition("=")
    if not sep or not name.strip():
        raise WorkloadError(f"--input {spec!r}: expected NAME=D0,D1,... (e.g. pixel_values=1,3,224,224)")
    dims = dims.strip()
    if not dims:
        return name.strip(), ()
    try:
        shape = tuple(int(d) for d in dims.split(","))
    except ValueError:
        raise WorkloadError(f"--input {spec!r}: dimensions must be whole numbers separated by commas") from None
    if any(d < 0 for d in shape):
        raise WorkloadError(f"--input {spec!r}: dimensions cannot be negative")
    return name.strip(), shape


def workload_from_args(args: argparse.Namespace) -> Workload:
    """The :class:`Workload` the workload flags describe."""
    shapes = dict(parse_input_spec(s) for s in args.input or ())
    return Workload(
        batch=args.batch,
        seq_len=args.seq,
        context=args.context,
        image_size=args.image_size,
        input_shapes=shapes,
        kv_cache_dtype=args.kv_cache_dtype,
        tensor_parallel=args.tensor_parallel,
        gpu_layers=args.gpu_layers,
        use_mmap=not args.no_mmap,
        mlock=args.mlock,
        repack=not args.no_repack,
        swa_full=True if args.swa_full else None,
    )


def _add_target(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--device", metavar="ID", help="a catalog device id (see `advisor devices`)")
    g.add_argument("--hardware", metavar="FILE", help="a hardware file written by `advisor probe --out`")


def _add_workload(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runtime", choices=RUNTIMES, help="runtime (default: follows the format and the target)")
    p.add_argument(
        "--input",
        action="append",
        metavar="NAME=D0,D1,...",
        help="explicit shape of an input (repeatable; `NAME=` for a scalar)",
    )
    p.add_argument("--batch", type=int, default=1, help="batch size; for LLMs, concurrent sequences (default 1)")
    p.add_argument("--seq", type=int, metavar="N", help="sequence length for symbolic sequence dims")
    p.add_argument("--context", type=int, metavar="N", help="LLM tokens per sequence (prompt + generated)")
    p.add_argument("--image-size", type=int, metavar="N", help="height and width for symbolic image dims")
    p.add_argument("--kv-cache-dtype", choices=KV_CACHE_DTYPES, help="KV-cache element type (LLMs)")
    p.add_argument("--tensor-parallel", type=int, default=1, metavar="N", help="GPUs to split the model over")
    p.add_argument("--gpu-layers", type=int, metavar="N",
                   help="LLMs on a GPU runtime: transformer layers on the GPU, the rest in RAM (default: all)")
    g = p.add_argument_group("llama.cpp loading (as its own flags)")
    g.add_argument("--no-mmap", action="store_true", help="read the weights into memory instead of mapping the file")
    g.add_argument("--mlock", action="store_true",
                   help="pin the mapped weights in RAM (llama-cpp-python use_mlock=True; its server's default)")
    g.add_argument("--no-repack", action="store_true", help="no interleaved copy of the weights on the CPU")
    g.add_argument("--swa-full", action="store_true",
                   help="full-size cache for sliding-window layers (llama-cpp-python's default)")


def _add_check(p: argparse.ArgumentParser) -> None:
    p.add_argument("--check", action="store_true",
                   help="for scripts: print nothing (but --json) and exit 0 if it fits, 1 if it does not, "
                   "2 on an error, as grep -q does")


def _add_cloud(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cloud", action="store_true",
                   help="also price cloud instances when the model fits the target (otherwise only when it does not)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="advisor",
        description="Does this AI model fit this machine, and what to change if it does not. "
        "Run with no arguments (or a model path) to open the app.",
    )
    parser.add_argument("--version", action="version", version=f"advisor {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("analyze", help="the model's profile and predicted peak memory on a target")
    p.add_argument("path", help="an .onnx, .safetensors or .gguf file, or a model folder")
    _add_target(p)
    _add_workload(p)
    p.add_argument("--json", action="store_true", help="print one JSON document")
    _add_check(p)

    p = sub.add_parser("plan", help="ranked options that make the model fit")
    p.add_argument("path", help="an .onnx, .safetensors or .gguf file, or a model folder")
    _add_target(p)
    _add_workload(p)
    _add_cloud(p)
    p.add_argument("--json", action="store_true", help="print one JSON document")
    _add_check(p)

    p = sub.add_parser("report", help="write the plan as HTML, PDF, Markdown or JSON")
    p.add_argument("path", help="an .onnx, .safetensors or .gguf file, or a model folder")
    p.add_argument("-o", "--out", required=True, metavar="OUT", help="OUT.html, OUT.pdf, OUT.md or OUT.json")
    _add_target(p)
    _add_workload(p)
    _add_cloud(p)

    p = sub.add_parser("measure", help="run the model here and hold its measured memory against the prediction")
    p.add_argument("path", help="an .onnx or .gguf file, or a model folder")
    _add_workload(p)
    p.add_argument("--required", action="store_true",
                   help="also find the least memory it runs in at full speed (reruns it under tighter caps; "
                   "needs a memory cgroup, i.e. root)")
    p.add_argument("--json", action="store_true", help="print one JSON document")

    p = sub.add_parser("probe", help="this machine's hardware profile")
    p.add_argument("--out", metavar="FILE", help="write the profile as JSON (read back with --hardware FILE)")
    p.add_argument("--json", action="store_true", help="print one JSON document")

    p = sub.add_parser("devices", help="the device catalog")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    return parser


def run(argv: Sequence[str]) -> int:
    """Run a subcommand; returns the exit code. Errors a person caused exit with 2."""
    parser = build_parser()
    args = parser.parse_args(list(argv))
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        handler = {
            "analyze": _cmd_analyze,
            "plan": _cmd_plan,
            "report": _cmd_report,
            "measure": _cmd_measure,
            "probe": _cmd_probe,
            "devices": _cmd_devices,
        }[args.command]
        return handler(args)
    except AdvisorError as exc:
        print(f"advisor: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("advisor: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`advisor devices | head`): stop quietly, as cat and grep do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except Exception as exc:
        if os.environ.get("ADVISOR_DEBUG"):
            traceback.print_exc()
        print(
            f"advisor: internal error: {type(exc).__name__}: {exc} (set ADVISOR_DEBUG=1 for details)",
            file=sys.stderr,
        )
        return 1


def _analysis(args: argparse.Namespace) -> Any:
    from advisor.analysis import analyze, resolve_target
    from advisor.readers import read_model

    workload = workload_from_args(args)  # bad flags fail before any file is read
    model = read_model(args.path)
    target = resolve_target(args.device, args.hardware)
    return analyze(model, target, workload, args.runtime)


def _cmd_analyze(args: argparse.Namespace) -> int:
    analysis = _analysis(args)
    if args.check and not args.json:
        return _fit_code(args, analysis)  # quiet, as grep -q: the exit code is the answer
    if args.json:
        _print_json(analysis.to_dict())
    else:
        from advisor.textout import analysis_text

        print(analysis_text(analysis))
    return _fit_code(args, analysis)


def _fit_code(args: argparse.Namespace, analysis: Any) -> int:
    """``--check``: 0 when the model fits the target as asked, 1 when it does not; else always 0."""
    return EXIT_OK if not args.check or analysis.fit.fits else EXIT_DOES_NOT_FIT


def _cmd_plan(args: argparse.Namespace) -> int:
    from advisor.plan import make_plan

    analysis = _analysis(args)
    if args.check and not args.json:
        return _fit_code(args, analysis)  # quiet: whether it fits as asked needs no plan
    plan = make_plan(analysis, cloud=args.cloud)
    if args.json:
        _print_json({**analysis.to_dict(), **plan.to_dict()})
    else:
        from advisor.textout import analysis_text, plan_text

        print(analysis_text(analysis))
        print()
        print(plan_text(plan))
    return _fit_code(args, analysis)


def _cmd_report(args: argparse.Namespace) -> int:
    from advisor.plan import make_plan
    from advisor.report import check_destination, write_report

    out = Path(args.out)
    fmt = check_destination(out)  # an unknown extension or unwritable folder fails before the work
    pdf_renderer = None
    if fmt == "pdf":
        try:
            from advisor.ui.pdf import html_to_pdf  # Qt prints the PDF; the core stays Qt-free
        except ImportError as exc:
            from advisor.errors import ReportError

            raise ReportError(f"writing a PDF needs Qt (PySide6), which did not load: {exc}", out) from None
        pdf_renderer = html_to_pdf
    analysis = _analysis(args)
    plan = make_plan(analysis, cloud=args.cloud)
    images = _chart_images(analysis) if fmt in ("html", "pdf") else {}
    written = write_report(analysis, plan, out, images=images, pdf_renderer=pdf_renderer)
    print(f"wrote {written}")
    return EXIT_OK


def _chart_images(analysis: Any) -> dict[str, bytes]:
    """The breakdown chart as PNG, drawn by the app's own chart (offscreen); none if Qt cannot start."""
    try:
        from advisor.ui.render import render_breakdown_png
    except ImportError as exc:
        print(f"advisor: note: report written without the chart ({exc})", file=sys.stderr)
        return {}
    return {"breakdown": render_breakdown_png(analysis)}


def _cmd_measure(args: argparse.Namespace) -> int:
    from advisor.measure import measure
    from advisor.readers import read_model

    workload = workload_from_args(args)
    model = read_model(args.path)
    m = measure(model, workload, args.runtime, required=args.required)
    if args.json:
        _print_json({"advisor_version": __version__, "measurement": m.to_dict()})
    else:
        from advisor.textout import measurement_text

        print(measurement_text(m))
    return EXIT_OK


def _cmd_probe(args: argparse.Namespace) -> int:
    from advisor.hardware.catalog import save_hardware_file
    from advisor.hardware.probe import probe

    profile = probe()
    if args.out:
        save_hardware_file(profile, Path(args.out))
        if not args.json:
            print(f"wrote {args.out} (use it with --hardware {args.out})")
    if args.json:
        _print_json(profile.to_dict())
    elif not args.out:
        from advisor.textout import hardware_text

        print(hardware_text(profile))
    return EXIT_OK


def _cmd_devices(args: argparse.Namespace) -> int:
    from advisor.hardware.catalog import catalog_entries

    entries = catalog_entries()
    if args.json:
        _print_json(entries)
    else:
        from advisor.textout import devices_text

        print(devices_text(entries))
    return EXIT_OK


def _print_json(doc: Any) -> None:
    json.dump(doc, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")
