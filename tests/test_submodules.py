"""advisor.submodules: one module of a package without the package's __init__, and the package after."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.builders import gguf_models

REPO = Path(__file__).resolve().parent.parent


def test_reading_a_gguf_loads_gguf_constants_alone_and_a_later_import_gguf_gets_the_same_module(
        tmp_path: Path) -> None:
    path = gguf_models.tiny_llama_gguf(tmp_path / "tiny.gguf")
    script = f"""
import sys
from advisor.readers import read_model
m = read_model({str(path)!r})
assert m.n_params > 0 and m.format == "gguf"
assert "gguf" not in sys.modules and "gguf.constants" in sys.modules, sorted(n for n in sys.modules if "gguf" in n)
assert "numpy" not in sys.modules
constants = sys.modules["gguf.constants"]
import gguf
assert gguf.constants is constants and gguf.GGMLQuantizationType is constants.GGMLQuantizationType
assert hasattr(gguf, "GGUFWriter") and hasattr(gguf, "GGUFReader")
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_a_package_already_imported_is_used_as_it_is() -> None:
    import gguf

    from advisor.submodules import submodule_or_package

    assert submodule_or_package("gguf", "constants", lambda folder: folder / "constants.py") is gguf.constants


def test_a_missing_file_falls_back_to_importing_the_package() -> None:
    script = """
import sys
from advisor.submodules import submodule_or_package
assert "xmlrpc" not in sys.modules
module = submodule_or_package("xmlrpc", "client", lambda folder: folder / "no-such-file.py")
import xmlrpc.client
assert module is xmlrpc.client and "xmlrpc" in sys.modules
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
