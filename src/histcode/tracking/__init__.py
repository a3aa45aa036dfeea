"""MLflow conventions (DESIGN §5), and the only door to mlflow: ``store`` (where runs go), ``lineage`` (what a
run saw), ``runs`` (a stage's run and what it logs), ``spool`` + ``replay`` (deferred runs), ``registry_client``
(the registry's calls). Stages use these names as ``tracking.<name>``."""

from histcode.tracking.lineage import EXP_NAME_TAG, dvc_hash, git_commit, run_tags
from histcode.tracking.registry_client import (
    NO_INPUT_EXAMPLE,
    client,
    download_artifacts,
    log_history,
    log_pyfunc_model,
    model_version_by_alias,
    terminate_run,
)
from histcode.tracking.replay import replay_spool
from histcode.tracking.runs import (
    RUN_CONFIG,
    DeferredRun,
    active_run,
    flatten,
    log_artifact,
    log_artifacts,
    log_dataset,
    log_dict,
    log_image,
    log_metrics,
    log_params,
    log_step,
    log_text,
    run_config,
    set_description,
    set_tags,
    start_run,
    write_metrics,
)
from histcode.tracking.store import (
    ARTIFACTS_DIR,
    EXPERIMENT_PREFIX,
    MLRUNS_DIR,
    SPOOL_DIR,
    TrackingStoreError,
    artifact_location,
    check_store_uri,
    experiment_copy,
    local_store,
    project_root,
    relocate_store,
    setup,
    spool_root,
    tracking_uri,
)

__all__ = [
    "ARTIFACTS_DIR", "EXPERIMENT_PREFIX", "EXP_NAME_TAG", "MLRUNS_DIR", "NO_INPUT_EXAMPLE", "RUN_CONFIG", "SPOOL_DIR",
    "DeferredRun", "TrackingStoreError", "active_run", "artifact_location", "check_store_uri", "client",
    "download_artifacts", "dvc_hash", "experiment_copy", "flatten", "git_commit", "local_store", "log_artifact",
    "log_artifacts", "log_dataset", "log_dict", "log_history", "log_image", "log_metrics", "log_params",
    "log_pyfunc_model", "log_step", "log_text", "model_version_by_alias", "project_root", "relocate_store",
    "replay_spool", "run_config", "run_tags", "set_description", "set_tags", "setup", "spool_root", "start_run",
    "terminate_run", "tracking_uri", "write_metrics",
]
