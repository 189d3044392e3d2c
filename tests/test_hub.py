"""hf:ORG/NAME against a local, Hub-shaped HTTP server: headers only, never the weights."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from advisor.errors import ModelFormatError
from advisor.readers import read_model
from tests.builders import safetensors_models

SHA = "abcdef0123456789abcdef0123456789abcdef01"


class _Hub(BaseHTTPRequestHandler):
    """``/api/models/{repo}/revision/{rev}`` and ``/{repo}/resolve/{sha}/{file}`` (with Range)."""

    repos: ClassVar[dict[str, Path]] = {}
    private: ClassVar[set[str]] = set()
    served: ClassVar[list[int]] = []

    def log_message(self, *_: object) -> None:  # quiet
        pass

    def _send(self, code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.served.append(len(body))

    def do_GET(self) -> None:  # http.server's name
        m = re.match(r"^/api/models/([^/]+/[^/]+)/revision/([^/]+)$", self.path)
        if m:
            repo = m.group(1)
            if repo in self.private and self.headers.get("Authorization") != "Bearer secret":
                return self._send(401)
            if repo not in self.repos:
                return self._send(404)
            files = sorted(p.name for p in self.repos[repo].iterdir())
            doc = {"id": repo, "sha": SHA, "siblings": [{"rfilename": f} for f in files]}
            return self._send(200, json.dumps(doc).encode(), {"Content-Type": "application/json"})
        m = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", self.path)
        if not m or m.group(1) not in self.repos or not (self.repos[m.group(1)] / m.group(3)).is_file():
            return self._send(404)
        path = self.repos[m.group(1)] / m.group(3)
        size = path.stat().st_size
        rng = re.match(r"bytes=(\d+)-(\d+)", self.headers.get("Range", ""))
        with path.open("rb") as f:
            if rng:
                start, end = int(rng.group(1)), min(int(rng.group(2)), size - 1)
                f.seek(start)
                return self._send(206, f.read(end - start + 1), {"Content-Range": f"bytes {start}-{end}/{size}"})
            return self._send(200, f.read())


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_Hub]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    _Hub.repos, _Hub.private, _Hub.served = {}, set(), []
    try:
        yield _Hub
    finally:
        server.shutdown()
        server.server_close()


def test_a_hub_model_is_read_from_its_headers_only(hub: type[_Hub], tmp_path: Path) -> None:
    folder = safetensors_models.llama_folder(tmp_path / "llama8b", n_layers=32, hidden=4096, n_heads=32,
                                             n_kv_heads=8, vocab=128256, intermediate=14336, n_shards=4)
    hub.repos["meta/llama-8b"] = folder
    local, remote = read_model(folder), read_model("hf:meta/llama-8b")
    assert (remote.n_params, remote.weight_bytes, remote.file_bytes) == (local.n_params, local.weight_bytes,
                                                                         local.file_bytes)
    assert remote.arch == local.arch and remote.path == "hf:meta/llama-8b" and remote.load_path == "meta/llama-8b"
    assert sum(hub.served) < 0.01 * local.file_bytes  # headers and JSON, not 16 GB of weights
    assert any("read from the Hugging Face Hub: meta/llama-8b at abcdef012345" in n for n in remote.notes)


def test_hub_errors_are_one_clear_line(hub: type[_Hub], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = safetensors_models.llama_folder(tmp_path / "tiny", n_layers=2, hidden=64, n_heads=4, n_kv_heads=2,
                                             vocab=128, intermediate=96, n_shards=1)
    hub.repos["org/private"] = folder
    hub.private.add("org/private")
    with pytest.raises(ModelFormatError, match="private or gated: set HF_TOKEN"):
        read_model("hf:org/private")
    monkeypatch.setenv("HF_TOKEN", "secret")
    assert read_model("hf:org/private").n_params > 0
    with pytest.raises(ModelFormatError, match="no such repository"):
        read_model("hf:org/missing")
    with pytest.raises(ModelFormatError, match="not a Hugging Face model id"):
        read_model("hf:../../etc")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(ModelFormatError, match="cannot reach the Hub"):
        read_model("hf:org/private")


def test_file_open_from_hugging_face(hub: type[_Hub], tmp_path: Path, qtbot: object,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from advisor.ui.main_window import MainWindow
    from advisor.ui.presenter import Presenter
    from advisor.ui.settings import Settings
    from advisor.ui.tasks import TaskRunner
    from tests.test_ui_presenter import core_with
    from tests.test_ui_window import WAIT_MS, FakeSampler

    folder = safetensors_models.llama_folder(tmp_path / "tiny", n_layers=2, hidden=64, n_heads=4, n_kv_heads=2,
                                             vocab=128, intermediate=96, n_shards=2)
    hub.repos["org/tiny"] = folder
    settings = Settings.at_path(tmp_path / "s.ini")
    presenter = Presenter(TaskRunner(), core_with())
    w = MainWindow(presenter, settings, sampler=FakeSampler(), devices=())
    qtbot.addWidget(w)  # type: ignore[attr-defined]
    with qtbot.waitSignal(presenter.targetChanged, timeout=WAIT_MS):  # type: ignore[attr-defined]
        w.start()
    monkeypatch.setattr(w, "ask_hub_model", lambda: "org/tiny")
    with qtbot.waitSignal(presenter.planChanged, timeout=WAIT_MS):  # type: ignore[attr-defined]
        w.hub_action.trigger()
    assert presenter.model.path == "hf:org/tiny" and len(presenter.model.files) == 2
    assert settings.recent_files[0] == "hf:org/tiny"
    w.shutdown()


def test_a_gguf_repo_is_read_from_a_growing_prefix(hub: type[_Hub], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from advisor.analysis import analyze
    from advisor.estimator.types import Workload
    from advisor.hardware.catalog import get_device
    from advisor.plan import make_plan
    from advisor.readers import hub as hub_reader
    from tests.builders import gguf_models

    specs = gguf_models.llama_gguf_specs(n_layers=32, hidden=4096, n_heads=32, n_kv_heads=8, vocab=128256,
                                         ff=14336, qtype="Q4_K", embd_type="Q4_K", out_type="Q6_K")
    meta = {"{arch}.block_count": 32, "{arch}.embedding_length": 4096, "{arch}.feed_forward_length": 14336,
            "{arch}.attention.head_count": 32, "{arch}.attention.head_count_kv": 8}
    repo = tmp_path / "repo"
    repo.mkdir()
    gguf_models.sparse_gguf(repo / "llama-Q4_K_M.gguf", specs, metadata=meta)
    hub.repos["org/llama-gguf"] = repo
    monkeypatch.setattr(hub_reader, "GGUF_FIRST_PREFIX", 256)  # force several doublings of the prefix
    local, remote = read_model(repo / "llama-Q4_K_M.gguf"), read_model("hf:org/llama-gguf")
    assert (remote.n_params, remote.weight_bytes, remote.format) == (local.n_params, local.weight_bytes, "gguf")
    assert sum(hub.served) < 0.01 * local.file_bytes
    plan = make_plan(analyze(remote, get_device("rpi5-8gb"), Workload(context=512), "llama.cpp"), catalog=())
    assert any("--hf-repo org/llama-gguf --hf-file llama-Q4_K_M.gguf" in o.how_to for o in plan.options)
    gguf_models.sparse_gguf(repo / "llama-Q8_0.gguf", specs, metadata=meta)  # two models: name one
    with pytest.raises(ModelFormatError, match=r"2 GGUF files: name one, e\.g\. hf:org/llama-gguf/"):
        read_model("hf:org/llama-gguf")
    assert read_model("hf:org/llama-gguf/llama-Q8_0.gguf").n_params == local.n_params
