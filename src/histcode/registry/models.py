"""Log, register and load PyTorch models through the MLflow registry (DESIGN §5).

Models are stored as data (``safe_model``: safetensors weights + a JSON architecture spec), logged as an
MLflow pyfunc "model from code" so the UI and ``mlflow models`` load them, and tagged with each file's
sha256; ``load_model`` verifies the digests and returns the tensors and spec without unpickling anything (the
package that owns the model kind builds the module).
New versions get the alias ``challenger`` (those trained in a ``dvc exp run --temp``/``--queue`` copy get
``exp-<name>`` instead); only the promotion gate moves ``champion``. Registry stages are deprecated and never used.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from histcode import __version__, tracking
from histcode.errors import HistcodeError

if TYPE_CHECKING:
    from histcode.registry.safe_model import StoredModel

log = logging.getLogger(__name__)

CHALLENGER = "challenger"
CHAMPION = "champion"


class RegistryError(HistcodeError, RuntimeError):
    """A registered model or alias is missing, with the command that creates it."""


def model_uri(name: str, alias: str = CHAMPION) -> str:
    return f"models:/{name}@{alias}"


_MODEL_URI = re.compile(r"^models:/(?P<name>[^@/]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))?$")


@dataclass(frozen=True)
class ModelRef:
    """The parts of a registry URI: ``models:/<name>@<alias>``, ``models:/<name>/<version>`` or ``models:/<name>``."""

    name: str
    alias: str | None = None
    version: str | None = None


def parse_model_uri(uri: str | Path) -> ModelRef | None:
    """The one parser of ``models:/`` URIs; None for anything else (a local path)."""
    m = _MODEL_URI.match(str(uri))
    return ModelRef(m.group("name"), m.group("alias"), m.group("version")) if m else None


def version_of(ref: ModelRef) -> Any:
    """The ``ModelVersion`` a reference names (a bare name means its champion)."""
    if ref.version is not None:
        return tracking.client().get_model_version(ref.name, ref.version)
    return get_version(ref.name, ref.alias or CHAMPION)


def load_model_uri(ref: ModelRef) -> StoredModel:
    """``load_model`` for a parsed ``models:/`` URI (a bare name loads its champion)."""
    return load_model(ref.name, alias=ref.alias or CHAMPION, version=ref.version)


def log_and_register(
    model: Any,
    name: str,
    *,
    input_example: np.ndarray,
    metrics: dict[str, float] | None = None,
    tags: dict[str, str] | None = None,
    alias: str = CHALLENGER,
    extra_artifacts: dict[str, Any] | None = None,
) -> Any:
    """Log ``model`` in the active run, register it as a new version of ``name`` and alias it ``challenger``
    (``exp-<name>`` in a DVC experiment copy, tagged ``dvc.exp_name``: see ``tracking.experiment_copy``).

    The version is tagged with the run's git commit, DVC data hash and run id so every registered model links
    back to code, data and training run, with ``sha256.<file>`` of its weights and spec (and of each
    ``extra_artifacts`` file, logged beside the model under ``<model>/extra/``). ``metrics`` are stored as
    version tags ``metric.<key>``. Returns the ``ModelVersion``.
    """
    import tempfile

    import torch

    from histcode.registry import pyfunc_model, safe_model

    run = tracking.active_run()
    if run is None:
        raise RegistryError(f"log_and_register({name!r}) must be called inside an active MLflow run.")
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model(torch.from_numpy(np.asarray(input_example)))
    if isinstance(out, tuple | list):
        out = out[0]
    if isinstance(out, dict):
        out = next(iter(out.values()))
    output = out.detach().float().cpu().numpy()
    model.train(was_training)
    artifact_name = name.replace("histcode-", "")
    digests: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        files = safe_model.write_model_files(model, tmp)
        digests.update({k: safe_model.sha256(v) for k, v in files.items()})
        info = tracking.log_pyfunc_model(
            artifact_name,
            python_model=pyfunc_model.__file__,
            artifacts={"weights": str(files[safe_model.WEIGHTS_FILE]), "spec": str(files[safe_model.SPEC_FILE])},
            input_example=np.asarray(input_example),
            output=output,
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", f"histcode=={__version__}",
                              "safetensors"],
            registered_model_name=name,
        )
    for key, path in (extra_artifacts or {}).items():
        tracking.log_artifact(path, artifact_path=f"{artifact_name}_extra/{key}")
        digests[f"extra/{key}/{Path(path).name}"] = safe_model.sha256(path)
    version = str(info.registered_model_version)
    client = tracking.client()
    run_tags = dict(client.get_run(run.info.run_id).data.tags)
    parent = run_tags.get("mlflow.parentRunId")
    if parent and not run_tags.get("dvc_data_hash"):  # nested final-model runs: the parent saw the inputs
        run_tags["dvc_data_hash"] = client.get_run(parent).data.tags.get("dvc_data_hash", "")
    version_tags = {
        "git_commit": run_tags.get("git_commit", tracking.git_commit()),
        "dvc_data_hash": run_tags.get("dvc_data_hash", ""),
        "run_id": run.info.run_id,
        "stage": run_tags.get("histcode.stage", ""),
        "artifact_path": artifact_name,
        **(tags or {}),
    }
    version_tags.update({f"sha256.{k}": v for k, v in digests.items()})
    for key, value in (metrics or {}).items():
        version_tags[f"metric.{key}"] = f"{float(value):.6g}"
    experiment = tracking.experiment_copy() if alias == CHALLENGER else None
    if experiment:  # one of many background experiments: the last to finish must not become the challenger
        alias = experiment_alias(experiment)
        version_tags[tracking.EXP_NAME_TAG] = experiment
    for key, value in version_tags.items():
        client.set_model_version_tag(name, version, key, str(value))
    client.set_registered_model_alias(name, alias, version)
    log.info("registered %s version %s as @%s (run %s)%s", name, version, alias, run.info.run_id,
             f"; trained in DVC experiment {experiment!r}, so not a challenger: `histcode promote --candidate "
             f"{alias}` puts it through the gate" if experiment else "")
    return client.get_model_version(name, version)


def experiment_alias(experiment: str) -> str:
    """``exp-<name>``: the alias of a version trained in a ``dvc exp run --temp``/``--queue`` copy (MLflow allows
    letters, digits, ``_`` and ``-`` in aliases; DVC's generated names are already such)."""
    return "exp-" + re.sub(r"[^\w-]", "-", experiment)


def get_version(name: str, alias: str = CHAMPION) -> Any:
    """The ``ModelVersion`` behind ``name@alias``; ``RegistryError`` with the fix if there is none."""
    mv = tracking.model_version_by_alias(tracking.client(), name, alias)
    if mv is None:
        hint = (
            "run `dvc repro` (or the stage that trains it) to register a challenger"
            if alias == CHALLENGER
            else "run `make promote` after `dvc repro` to promote a challenger to champion (if its gate refused it, "
            "`--alias challenger` evaluates the unpromoted version)"
        )
        raise RegistryError(f"no model version {name}@{alias} in {tracking.tracking_uri()}: {hint}.")
    return mv


def download_verified(name: str, version: str | int, dst: str | Path) -> dict[str, Path]:
    """Download ``name`` v``version``'s model files into ``dst`` and check them against the registered
    sha256 tags; returns {file key: local path} (weights, spec and any ``extra/<key>/<file>``)."""
    from histcode.registry import safe_model

    client = tracking.client()
    mv = client.get_model_version(name, str(version))
    where = f"{name} v{version}"
    digests = {k.removeprefix("sha256."): v for k, v in mv.tags.items() if k.startswith("sha256.")}
    if not digests:
        raise RegistryError(f"{where} has no sha256 tags: it was registered before safe loading (a pickle); "
                            "retrain it with `dvc repro` and promote the new version")
    root = Path(tracking.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=str(dst)))
    files = {safe_model.WEIGHTS_FILE: root / "artifacts" / safe_model.WEIGHTS_FILE,
             safe_model.SPEC_FILE: root / "artifacts" / safe_model.SPEC_FILE}
    extras = [k for k in digests if k.startswith("extra/")]
    if extras:
        artifact_name = mv.tags.get("artifact_path", name.replace("histcode-", ""))
        extra_root = Path(tracking.download_artifacts(
            run_id=mv.run_id, artifact_path=f"{artifact_name}_extra", dst_path=str(Path(dst) / "extra")))
        files.update({k: extra_root / k.removeprefix("extra/") for k in extras})
    for key, path in files.items():
        if not path.is_file():
            raise RegistryError(f"{where}: {key} missing from the artifact store ({path})")
    try:
        safe_model.verify(files, digests, where)
    except safe_model.IntegrityError as exc:
        raise RegistryError(str(exc)) from exc
    return files


def load_model(name: str, alias: str = CHAMPION, *, version: str | int | None = None) -> StoredModel:
    """Read ``models:/<name>@<alias>`` (or ``/<version>``) as a ``StoredModel`` (kind, arch, meta, tensors),
    after checking every file against its registered sha256 (``RegistryError``, one line, on any mismatch);
    the package that owns the kind builds the module from it."""
    import tempfile

    from histcode.registry import safe_model

    if version is None:
        version = get_version(name, alias).version  # clear error when missing
    with tempfile.TemporaryDirectory() as tmp:
        files = download_verified(name, version, tmp)
        try:
            return safe_model.read_model_files(files[safe_model.WEIGHTS_FILE], files[safe_model.SPEC_FILE])
        except safe_model.IntegrityError as exc:
            raise RegistryError(f"{name} v{version}: {exc}") from exc
