"""Throughput of the GDC STAR reader and the matrix builder on full-size files (60,664 genes each).

The bound: parsing cannot beat pandas' C parser reading the same file with no checks (``pd.read_csv``),
nor the raw byte read; we report files/s, MB/s and the ratio to both bounds. Usage:

    python benchmarks/expression_readers.py --files 8 --out reports/benchmarks/expression_readers.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from histcode.expression.matrix import load_expression
from histcode.expression.readers import read_star

N_GENES = 60_660  # GENCODE v36 genes in a GDC STAR augmented counts file
HEADER = ("gene_id\tgene_name\tgene_type\tunstranded\tstranded_first\tstranded_second\ttpm_unstranded\t"
          "fpkm_unstranded\tfpkm_uq_unstranded")


def write_files(root: Path, n_files: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    ids = [f"ENSG{i:011d}.{rng.integers(1, 20)}" for i in range(N_GENES)]
    names = [f"GENE{i}" for i in range(N_GENES)]
    paths = []
    for k in range(n_files):
        counts = rng.negative_binomial(2, 0.01, N_GENES)
        fpkm = counts / 7.0
        body = "\n".join(f"{g}\t{n}\tprotein_coding\t{c}\t{c // 2}\t{c - c // 2}\t{f / 2:.4f}\t{f:.4f}\t{f * 3:.4f}"
                         for g, n, c, f in zip(ids, names, counts, fpkm, strict=True))
        summary = "\n".join(f"{s}\t\t\t{rng.integers(1e6)}\t0\t0\t\t\t" for s in
                            ("N_unmapped", "N_multimapping", "N_noFeature", "N_ambiguous"))
        p = root / f"f{k}.rna_seq.augmented_star_gene_counts.tsv"
        p.write_text(f"# gene-model: GENCODE v36\n{HEADER}\n{summary}\n{body}\n")
        paths.append(p)
    return paths


def timed(fn, paths: list[Path]) -> float:
    t0 = time.perf_counter()
    for p in paths:
        fn(p)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_files(Path(tmp), args.files)
        mb = sum(p.stat().st_size for p in paths) / 1e6
        raw = timed(lambda p: p.read_bytes(), paths)
        bound = timed(lambda p: pd.read_csv(p, sep="\t", skiprows=1), paths)
        ours = timed(lambda p: read_star(p), paths)
        manifest = pd.DataFrame({"sample_id": [p.stem for p in paths], "path": [str(p) for p in paths],
                                 "format": "star"})
        t0 = time.perf_counter()
        data = load_expression(manifest)
        matrix = time.perf_counter() - t0
    result = {
        "files": args.files, "genes_per_file": N_GENES, "mb": round(mb, 1),
        "read_star_files_per_s": round(args.files / ours, 2), "read_star_mb_per_s": round(mb / ours, 1),
        "ratio_to_pandas_read_csv": round(bound / ours, 3), "ratio_to_raw_read": round(raw / ours, 4),
        "matrix_files_per_s": round(args.files / matrix, 2), "matrix_shape": list(data.values.shape),
        "matrix_ratio_to_pandas_read_csv": round(bound / matrix, 3),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
