"""Which slides of an external cohort the model has already seen: the same slide, file or patient in training.

An external validation means something only on tissue the model never trained on. A slide folder pointed at the
training downloads, a CPTAC manifest that lists a training slide, or an "external" TCGA subset that shares patients
with training all give an AUC that is a training score, without a word. Checked from the two cohorts' manifests:
the slide id, the file's content (``fingerprints.csv``, confirmed on the whole bytes where both files are here), and
the patient id.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from histcode.cohort.duplicates import full_digest
from histcode.cohort.fingerprint import read_fingerprints
from histcode.io.manifest import read_manifest


def _same_bytes(a: str, b: str) -> bool:
    pa, pb = Path(a), Path(b)
    if not (pa.is_file() and pb.is_file()):
        return True  # the fingerprints agree and a file is gone: trust them (size + first and last MiB)
    return pa.resolve() == pb.resolve() or full_digest(pa) == full_digest(pb)


KINDS = {"slide_id": "same slide id", "file": "same file", "patient": "training patient"}


def seen_in_training(external_dir: Path, training_dir: Path, *,
                     patients: bool = True) -> dict[str, tuple[str, str]]:
    """{external slide id: (kind, why it is not external)} for slides of ``external_dir``'s manifest that the cohort
    of ``training_dir`` holds: the same slide id, the same bytes, or (``patients``) the same patient (``KINDS``)."""
    ext = read_manifest(Path(external_dir) / "slides.csv", columns=("slide_id", "patient_id"))
    train = read_manifest(Path(training_dir) / "slides.csv", columns=("slide_id", "patient_id"))
    out: dict[str, tuple[str, str]] = {}
    train_slides = set(train["slide_id"].astype(str))
    for sid in ext["slide_id"].astype(str):
        if sid in train_slides:
            out[sid] = ("slide_id", f"slide {sid} is also in the training cohort (same slide id)")
    ext_prints, train_prints = read_fingerprints(external_dir), read_fingerprints(training_dir)
    if ext_prints is not None and train_prints is not None:
        e = ext_prints[ext_prints["table"] == "slides"]
        t = train_prints[train_prints["table"] == "slides"]
        pairs = e.merge(t, on=["size", "fingerprint"], suffixes=("", "_train"))
        for r in pairs.itertuples():
            if r.id not in out and _same_bytes(r.path, r.path_train):
                out[r.id] = ("file", f"the same file as training slide {r.id_train} ({r.path_train})")
    if patients:
        train_patients = set(train["patient_id"].astype(str))
        for r in ext.itertuples():
            if str(r.slide_id) not in out and str(r.patient_id) in train_patients:
                out[str(r.slide_id)] = ("patient", f"patient {r.patient_id} is in the training cohort")
    return out


def overlap_summary(seen: dict[str, tuple[str, str]], n_slides: int, *, cohort: str, training: str) -> str:
    """One log line: how many of ``cohort``'s slides are left out as seen in ``training``, and why."""
    kinds = Counter(kind for kind, _ in seen.values())
    how = ", ".join(f"{kinds[k]} {said}" for k, said in KINDS.items() if kinds[k])
    return (f"{cohort}: {len(seen)} of {n_slides} slide(s) left out of the external metrics, already in training "
            f"cohort {training} ({how}); listed per slide under seen_in_training in the metrics")
