"""Promotion gate over the registry: move ``champion`` to the ``challenger`` only on held-out evidence.

Every decision is recorded twice: as tags on the challenger version (``gate.*``) and as an MLflow run in the
``promotion`` experiment with the evidence numbers, so the UI shows why a model is (not) champion.
"""

from __future__ import annotations

import logging

from histcode import tracking
from histcode.registry.evidence import load_evidence
from histcode.registry.gate import Decision, GateConfig, decide
from histcode.registry.models import CHALLENGER, CHAMPION, RegistryError, _client, get_version

log = logging.getLogger(__name__)


def promote(name: str, cfg: GateConfig, *, dry_run: bool = False) -> Decision:
    """Compare ``name@challenger`` with ``name@champion`` and move ``champion`` when the gate says so."""
    import mlflow

    client = _client()
    challenger = get_version(name, CHALLENGER)
    try:
        champion = get_version(name, CHAMPION)
    except RegistryError:
        champion = None
    if champion is not None and str(champion.version) == str(challenger.version):
        return Decision(False, f"version {challenger.version} is already champion",
                        float("nan"), n=0)
    chal_df, kind = load_evidence(name, challenger.version)
    champ_df = None
    if champion is not None:
        champ_df, champ_kind = load_evidence(name, champion.version)
        if champ_kind != kind:
            raise RegistryError(f"{name}: champion evidence is {champ_kind!r}, challenger {kind!r}")
    if name not in cfg.thresholds:
        raise RegistryError(f"promote.thresholds has no entry for {name}; add one to params.yaml")
    decision = decide(chal_df, kind, cfg.thresholds[name], cfg, champ_df)
    log.info("%s v%s: %s", name, challenger.version, decision.reason)
    if dry_run:
        return decision
    for key, value in decision.as_tags().items():
        client.set_model_version_tag(name, challenger.version, key, value)
    with tracking.start_run(
        "promotion",
        run_name=f"promote-{name}-v{challenger.version}",
        stage="promote",
        params={"model": name, "challenger_version": challenger.version,
                "champion_version": champion.version if champion else "none",
                "threshold": cfg.thresholds[name], "min_delta": cfg.min_delta,
                "min_prob_better": cfg.min_prob_better, "bootstrap": cfg.bootstrap},
        tags={"gate.decision": "promoted" if decision.promote else "refused"},
    ):
        metrics = {"challenger_metric": decision.challenger_metric, "n": decision.n}
        if decision.champion_metric is not None:
            metrics.update(champion_metric=decision.champion_metric, delta=decision.delta or 0.0,
                           delta_ci_low=decision.delta_ci[0] if decision.delta_ci else 0.0,
                           delta_ci_high=decision.delta_ci[1] if decision.delta_ci else 0.0,
                           prob_better=decision.prob_better or 0.0)
        mlflow.log_metrics(metrics)
        mlflow.log_text(decision.reason, "decision.txt")
    if decision.promote:
        client.set_registered_model_alias(name, CHAMPION, challenger.version)
        if champion is not None:
            client.set_model_version_tag(name, champion.version, "gate.replaced_by", challenger.version)
    return decision


def promote_all(cfg: GateConfig, names: tuple[str, ...]) -> dict[str, Decision]:
    """Run the gate for every registered model name that has a challenger."""
    out: dict[str, Decision] = {}
    for name in names:
        try:
            get_version(name, CHALLENGER)
        except RegistryError as exc:
            log.warning("%s", exc)
            continue
        out[name] = promote(name, cfg)
    return out
