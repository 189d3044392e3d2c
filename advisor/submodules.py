"""Load a few modules of an installed package without running the package's ``__init__``.

Some packages import everything from their ``__init__``: ``onnx`` imports ml_dtypes (0.7 s, holding
the GIL), ``gguf`` imports numpy and its reader, writer and vocabulary code (60 ms), where the
advisor needs one compiled extension or one table of constants. :func:`load_submodules` finds
the package's folder without importing it (``importlib.util.find_spec`` of a top-level name does
not execute it), loads the named files under their real dotted names in ``sys.modules``, and
registers a one-shot import hook: when the package itself is imported later (by the Apply action,
by a person's code), the modules already loaded are bound as its attributes before its
``__init__`` runs, as a normal submodule import would have bound them, and its own imports of them
find them in ``sys.modules`` — the same module objects, the same classes.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

_lock = threading.Lock()


class _BindOnImport(importlib.abc.MetaPathFinder):
    """Makes a later ``import PACKAGE`` see the modules loaded here as its attributes."""

    def __init__(self, package: str, modules: dict[str, ModuleType]) -> None:
        self.package = package
        self.modules = modules

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.package:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        loader, modules = spec.loader, self.modules
        original = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            for attr, mod in modules.items():
                setattr(module, attr, mod)
            original(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def package_folder(package: str) -> Path:
    """The folder of an installed package, found without importing it.

    Raises:
        ImportError: the package is not installed (or is a single module).
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{package} is not installed as a package")
    return Path(next(iter(spec.submodule_search_locations)))


def load_submodules(package: str, files: dict[str, Path]) -> dict[str, ModuleType]:
    """The modules ``package.NAME`` for each ``NAME → file`` (``.py`` source or a compiled
    extension), loaded without the package's ``__init__``; ones already in ``sys.modules`` are
    reused. Falls back to nothing: callers catch ImportError/OSError and import the package.

    Raises:
        ImportError, OSError: a file is missing or does not load.
    """
    with _lock:
        full = sys.modules.get(package)
        out: dict[str, ModuleType] = {}
        for name, file in files.items():
            dotted = f"{package}.{name}"
            module = sys.modules.get(dotted)
            if module is None:
                if not file.is_file():
                    raise ImportError(f"unexpected {package} layout: no {file}")
                loader: importlib.abc.Loader = (
                    importlib.machinery.SourceFileLoader(dotted, str(file)) if file.suffix == ".py"
                    else importlib.machinery.ExtensionFileLoader(dotted, str(file)))
                spec = importlib.util.spec_from_loader(dotted, loader)
                assert spec is not None
                module = importlib.util.module_from_spec(spec)
                sys.modules[dotted] = module
                try:
                    loader.exec_module(module)
                except BaseException:
                    del sys.modules[dotted]
                    raise
            out[name] = module
        if full is None:
            sys.meta_path.insert(0, _BindOnImport(package, out))
        return out


def submodule_or_package(package: str, name: str, find: Callable[[Path], Path]) -> ModuleType:
    """``package.name`` loaded alone (``find(folder)`` gives its file), else through ``import package``."""
    try:
        return load_submodules(package, {name: find(package_folder(package))})[name]
    except (ImportError, OSError):
        return importlib.import_module(f"{package}.{name}")
