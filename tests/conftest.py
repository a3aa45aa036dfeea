"""Fixtures shared by every test package."""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules with a ``slow`` test first, in their order: with ``-n N --dist loadscope --no-loadscope-reorder``
    (``make test``) each worker starts on one of the end-to-end pipelines, instead of one of them starting last
    and running alone while the other workers idle."""
    def module(item: pytest.Item) -> str:
        return getattr(getattr(item, "module", None), "__name__", "")

    slow = {module(item) for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: module(item) not in slow)


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, fully migrated MLflow sqlite store, made once per session (migrations take seconds)."""
    tpl = tmp_path_factory.getbasetemp() / "mlflow_template.db"
    if not tpl.exists():
        import mlflow

        mlflow.MlflowClient(tracking_uri=f"sqlite:///{tpl}").search_experiments()
    return tpl


@pytest.fixture(scope="session")
def fresh_mlflow(mlflow_template: Path) -> Callable[[Path, pytest.MonkeyPatch], None]:
    """``fresh_mlflow(root, monkeypatch)`` points MLflow at a private copy of the template store under root."""

    def apply(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        shutil.copy(mlflow_template, root / "mlflow.db")
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")

    return apply


@pytest.fixture
def one_torch_thread():
    """Tiny models run fastest single-threaded on the shared 2-core test machine (no oversubscription);
    packages of such tests opt in with an autouse fixture that requests this one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write_distinct_copy(src: Path, dst: Path) -> Path:
    """``dst``: a copy of the slide ``src`` whose bytes are its own (ingest leaves out copies of one file under two
    rows), readable as before: a DICOM file's 128-byte preamble is free text, and a TIFF ignores trailing bytes."""
    data = bytearray(Path(src).read_bytes())
    mark = f"histcode test copy {hashlib.blake2b(str(dst).encode(), digest_size=8).hexdigest()}".encode()
    if Path(src).suffix.lower() == ".dcm":
        data[: min(len(mark), 128)] = mark[:128]
    else:
        data += mark
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(bytes(data))
    return dst


@pytest.fixture(scope="session")
def distinct_copy() -> Callable[[Path, Path], Path]:
    """``distinct_copy(src, dst)``: see ``write_distinct_copy``."""
    return write_distinct_copy


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as a module (benchmarks are scripts, not a package), for the tests that hold the
    evidence an issue's status rests on to the script that made it."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def benchmark_module() -> Callable[[str], ModuleType]:
    """``benchmark_module(name)``: see ``load_benchmark``."""
    return load_benchmark
