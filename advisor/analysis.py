"""One analysis, as every front shows it: model + target + workload → estimate → fit.

The CLI, the window and the report all build an :class:`Analysis` through :func:`analyze`, so
they agree on every figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advisor._version import __version__
from advisor.errors import HardwareProfileError
from advisor.estimator import default_runtime, estimate, fit
from advisor.estimator.types import Estimate, Fit, Workload
from advisor.hardware.profile import HardwareProfile
from advisor.readers.profile import ModelProfile


@dataclass(frozen=True)
class Analysis:
    """A model held against a target."""

    model: ModelProfile
    hardware: HardwareProfile
    workload: Workload
    runtime: str
    estimate: Estimate
    fit: Fit

    def to_dict(self) -> dict[str, Any]:
        """The document ``advisor analyze --json`` prints."""
        return {
            "advisor_version": __version__,
            "model": self.model.to_dict(),
            "target": self.hardware.to_dict(),
            "workload": self.workload.to_dict(),
            "runtime": self.runtime,
            "estimate": self.estimate.to_dict(),
            "fits": self.fit.fits,
            "fit": self.fit.to_dict(),
        }


def analyze(model: ModelProfile, hardware: HardwareProfile, workload: Workload, runtime: str | None = None,
            *, learn: bool = True) -> Analysis:
    """Estimate ``model`` under ``workload`` and hold it against ``hardware``.

    On this machine (``hardware.is_live``), a stored measurement of the same model, runtime and
    workload corrects the estimate and says so in its notes (:mod:`advisor.measure.store`);
    ``learn=False`` gives the estimate alone (what a new measurement is held against).
    """
    runtime = runtime or default_runtime(model, hardware)
    est = estimate(model, workload, runtime, hardware)
    if learn and hardware.is_live:
        from advisor.measure.store import learned

        est = learned(model, runtime, workload, est, hardware)
    return Analysis(model, hardware, workload, runtime, est, fit(est, hardware))


def resolve_target(device_id: str | None = None, hardware_file: str | Path | None = None) -> HardwareProfile:
    """The target a person named: a catalog device, a saved probe, or this machine (probed now)."""
    if device_id and hardware_file:
        raise HardwareProfileError("give either a device id or a hardware file, not both")
    if device_id:
        from advisor.hardware.catalog import get_device

        return get_device(device_id)
    if hardware_file:
        from advisor.hardware.catalog import load_hardware_file

        return load_hardware_file(hardware_file)
    from advisor.hardware.probe import probe

    return probe()
