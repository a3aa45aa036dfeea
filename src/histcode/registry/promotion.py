"""Promotion gate over the registry: move ``champion`` to the ``challenger`` only on held-out evidence.

Every decision is recorded three times: as tags on the challenger version (``gate.*``), as a readable section
of the version's description (the registry page shows it first and only a few tags), and as an MLflow run in
the ``promotion`` experiment with the evidence numbers, so the UI shows why a model is (not) champion.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime
from typing import Any

from histcode import tracking
from histcode.registry.evidence import load_evidence, load_null
from histcode.registry.gate import Decision, GateConfig, decide
from histcode.registry.models import CHALLENGER, CHAMPION, RegistryError, get_version
from histcode.registry.names import ENCODER, MIL

log = logging.getLogger(__name__)




def _optional(name: str, alias: str) -> Any:
    try:
        return get_version(name, alias)
    except RegistryError:
        return None


def _decide(name: str, cfg: GateConfig) -> tuple[Decision, Any, Any] | None:
    """(decision, challenger, champion) for ``name``; None when it has no challenger."""
    challenger = _optional(name, CHALLENGER)
    if challenger is None:
        return None
    champion = _optional(name, CHAMPION)
    if champion is not None and str(champion.version) == str(challenger.version):
        return Decision(False, f"version {challenger.version} is already champion", float("nan"), n=0), \
            challenger, champion
    chal_df, kind = load_evidence(name, challenger.version)
    champ_df = None
    nulls = {}
    if kind == "de" and (cfg.de_gene_test == "cv_null" or cfg.de_overall_p is not None):
        nulls = {"challenger_null": load_null(name, challenger.version),
                 "champion_null": load_null(name, champion.version) if champion is not None else None}
    if champion is not None:
        champ_df, champ_kind = load_evidence(name, champion.version)
        if champ_kind != kind:
            raise RegistryError(f"{name}: champion evidence is {champ_kind!r}, challenger {kind!r}")
    if name not in cfg.thresholds:
        raise RegistryError(f"promote.thresholds has no entry for {name}; add one to params.yaml")
    decision = decide(chal_df, kind, cfg.thresholds[name], cfg, champ_df, **nulls)
    digest = (challenger.tags or {}).get("evidence.sha256", "")
    if champion is not None and digest and digest == (champion.tags or {}).get("evidence.sha256"):
        # a rerun of the same model (e.g. `dvc repro -f`): say so, rather than leave "P(better) 0.00" unexplained
        decision = dataclasses.replace(decision, reason=f"the same held-out evidence as champion version "
                                       f"{champion.version} (sha256 {digest[:12]}…), a rerun of the same model; "
                                       f"{decision.reason}")
    log.info("%s v%s: %s", name, challenger.version, decision.reason)
    return decision, challenger, champion


def _apply(name: str, decision: Decision, challenger: Any, champion: Any, cfg: GateConfig) -> None:
    """Record the decision (version tags + a run in ``promotion``) and move ``champion`` if promoted."""
    client = tracking.client()
    if decision.reason.startswith(f"version {challenger.version} is already champion"):
        return
    for key, value in decision.as_tags().items():
        client.set_model_version_tag(name, challenger.version, key, value)
    mv = client.get_model_version(name, challenger.version)
    client.update_model_version(name, challenger.version,
                                description=gate_description(decision, mv.tags, champion, mv.description))
    with tracking.start_run(
        "promotion",
        run_name=f"promote-{name}-v{challenger.version}",
        stage="promote",
        params={"model": name, "challenger_version": challenger.version,
                "champion_version": champion.version if champion else "none",
                "threshold": cfg.thresholds.get(name, float("nan")), "min_delta": cfg.min_delta,
                "min_prob_better": cfg.min_prob_better, "bootstrap": cfg.bootstrap},
        tags={"gate.decision": "promoted" if decision.promote else "refused"},
    ):
        metrics = {"challenger_metric": decision.challenger_metric, "n": decision.n}
        if decision.champion_metric is not None:
            metrics.update(champion_metric=decision.champion_metric, delta=decision.delta or 0.0,
                           delta_ci_low=decision.delta_ci[0] if decision.delta_ci else 0.0,
                           delta_ci_high=decision.delta_ci[1] if decision.delta_ci else 0.0,
                           prob_better=decision.prob_better or 0.0)
        tracking.log_metrics({k: float(v) for k, v in metrics.items() if v == v})
        tracking.log_text(decision.reason, "decision.txt")
    if decision.promote:
        client.set_registered_model_alias(name, CHAMPION, challenger.version)
        if champion is not None:
            client.set_model_version_tag(name, champion.version, "gate.replaced_by", challenger.version)


GATE_HEADING = "Promotion gate:"  # plain text: the versions table shows a description's first line unrendered
_OLD_GATE_HEADINGS = ("### Promotion gate",)  # sections written before, replaced alike


def gate_description(decision: Decision, tags: dict[str, str], champion: Any, previous: str | None) -> str:
    """The version's description with a readable gate section (the UI shows the description first and only a
    few tags): the decision, its reason, the champion it was compared with and where the evidence is. Its first
    line is the verdict, which the versions table shows. A previous gate section is replaced, anything a user
    wrote above it is kept."""
    kept = previous or ""
    for heading in (*_OLD_GATE_HEADINGS, GATE_HEADING):
        kept = kept.split(heading)[0]
    kept = kept.rstrip()
    verdict = "promoted to @champion" if decision.promote else "refused (champion unchanged)"
    lines = [f"{GATE_HEADING} {verdict}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC", "", decision.reason, ""]
    if champion is not None:
        lines.append(f"- compared with champion: version {champion.version}")
    if "evidence.artifact" in tags:
        digest = tags.get("evidence.sha256", "")[:12]
        lines.append(f"- held-out evidence ({tags.get('evidence.kind', '?')}, {tags.get('evidence.n', '?')} rows): "
                     f"`{tags['evidence.artifact']}` in the source run, sha256 `{digest}…`")
    if "evidence.null_artifact" in tags:
        lines.append(f"- CV null of the per-gene test: `{tags['evidence.null_artifact']}`")
    lines.append("- every number: the `gate.*` tags of this version and the `promotion` experiment")
    body = "\n".join(lines)
    return f"{kept}\n\n{body}" if kept else body


def _refuse(d: Decision, why: str) -> Decision:
    return dataclasses.replace(d, promote=False, reason=f"{why} (gate alone: {d.reason})")


def promote_pair(cfg: GateConfig, *, dry_run: bool = False) -> dict[str, Decision]:
    """Encoder and MIL champions move as a consistent pair: the MIL champion is always trained on the encoder
    champion's features. An encoder is promoted only together with (or after) a MIL version trained on it
    that its own gate promotes; a MIL version trained on other features (another encoder version, a
    baseline, unknown) is refused."""
    enc, mil = _decide(ENCODER, cfg), _decide(MIL, cfg)
    if enc is None and mil is None:
        return {}
    enc_champ = _optional(ENCODER, CHAMPION)
    mil_champ = _optional(MIL, CHAMPION)
    ref = lambda mv: f"{ENCODER}/{mv.version}" if mv is not None else None  # noqa: E731
    trained_on = lambda mv: str(mv.tags.get("encoder_version", "")) if mv is not None else ""  # noqa: E731
    out: dict[str, Decision] = {}
    if enc is not None:
        d, chal, _ = enc
        if d.promote:
            pair_ok = (mil is not None and mil[0].promote and trained_on(mil[1]) == ref(chal)) or \
                trained_on(mil_champ) == ref(chal)
            if not pair_ok:
                detail = (f"{MIL}@challenger v{mil[1].version} was trained on {trained_on(mil[1]) or 'unknown'} "
                          f"features{'' if mil[0].promote else ' and is refused by its gate'}"
                          if mil is not None else f"no {MIL} challenger")
                d = _refuse(d, f"no promotable {MIL} version trained on {ref(chal)} features ({detail}); "
                               "train one with `dvc repro train_mil` and promote them together")
        out[ENCODER] = d
        enc = (d, chal, enc[2])
    target = enc[1] if enc is not None and enc[0].promote else enc_champ
    if mil is not None:
        d, chal, _ = mil
        registry_has_encoder = target is not None or enc is not None
        if d.promote and registry_has_encoder and trained_on(chal) != ref(target):
            want = f"{ENCODER}@champion v{target.version}" if target is not None else f"no {ENCODER} champion"
            d = _refuse(d, f"{MIL} v{chal.version} was trained on {trained_on(chal) or 'unknown'} features "
                           f"but the pair would have {want}; encoder and MIL champions must match")
        out[MIL] = d
        mil = (d, chal, mil[2])
    if not dry_run:
        for name, item in ((ENCODER, enc), (MIL, mil)):
            if item is not None:
                _apply(name, *item, cfg)
    return out


def promote(name: str, cfg: GateConfig, *, dry_run: bool = False) -> Decision:
    """Compare ``name@challenger`` with ``name@champion`` and move ``champion`` when the gate says so
    (encoder and MIL: as a pair, see ``promote_pair``)."""
    if name in (ENCODER, MIL):
        decisions = promote_pair(cfg, dry_run=dry_run)
        if name not in decisions:
            get_version(name, CHALLENGER)  # the one-line "no challenger" error
        return decisions[name]
    found = _decide(name, cfg)
    if found is None:
        get_version(name, CHALLENGER)
        raise AssertionError("unreachable")
    if not dry_run:
        _apply(name, *found, cfg)
    return found[0]


def promote_all(cfg: GateConfig, names: tuple[str, ...]) -> dict[str, Decision]:
    """Run the gate for every registered model name that has a challenger (encoder + MIL as a pair)."""
    out: dict[str, Decision] = {}
    if ENCODER in names or MIL in names:
        out.update({k: v for k, v in promote_pair(cfg).items() if k in names})
    for name in names:
        if name in (ENCODER, MIL):
            continue
        if _optional(name, CHALLENGER) is None:
            log.warning("%s has no @challenger; skipped", name)
            continue
        out[name] = promote(name, cfg)
    return out


def nominate(alias: str, names: tuple[str, ...]) -> list[str]:
    """Move ``@challenger`` to the version each of ``names`` holds under ``alias`` (e.g. ``exp-<name>``, which a
    ``dvc exp run --temp``/``--queue`` registers instead of a challenger), so the gate judges it next; returns the
    names that had one. RegistryError, naming the alias, when none had."""
    client = tracking.client()
    moved = []
    for name in names:
        mv = _optional(name, alias)
        if mv is not None:
            client.set_registered_model_alias(name, CHALLENGER, mv.version)
            log.info("%s: @challenger -> version %s (@%s)", name, mv.version, alias)
            moved.append(name)
    if not moved:
        raise RegistryError(f"no registered model has a version @{alias}: experiment copies register theirs as "
                            "@exp-<experiment name> (`dvc exp show` lists the names)")
    return moved
