"""Per-individual genetic modalities: the image → individual mapping and readers for the formats genetics people have.

A dataset folder keeps each genetic modality as ``genetics/<modality>.csv`` (first column = individual id, the rest
numeric; an individual without a row is missing that modality). When several images belong to one person (both
eyes), ``dataset.json`` names a mapping file, ``"genetics": {"individuals": "individuals.csv"}`` with the header
``case_id,individual_id``; genetics rows are then keyed by individual and every image of that person shares them,
and splits keep a person's images together (:func:`medgap.data.splits.make_splits` ``groups``). Without the
mapping a case is its own individual (the original ``genetics/*.csv`` keyed by case id).

Readers (each returns ``(individual ids (N,), feature names (F,), values (N, F) float32)``):

- :func:`read_bed`: PLINK ``.bed/.bim/.fam`` allele dosages (0/1/2 copies of A1) via ``bed-reader``, every k-th
  SNP (ContIG's uniform cross-section of the genome, official k = 100), missing calls filled with the column mode.
- :func:`read_sscore`: PLINK 2 ``.sscore`` files, every score column of each (``SCORE1_AVG``, ``SCORE2_AVG``, named
  ``PGS000018_AVG``; ``*_SUM`` when the file has no averages), z-scored.
- :func:`read_burden`: gene burden matrices (CSV or h5), genes with fewer than ``min_carriers`` carriers dropped,
  not normalised (as ContIG).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from medgap.atomic import atomic_path
from medgap.errors import DatasetError
from medgap.optional import require

INDIVIDUALS_HEADER = ["case_id", "individual_id"]


# ------------------------------------------------------------------------------------ image → individual mapping
def individuals_file(dataset_dir: str | os.PathLike, genetics: object) -> Path | None:
    """The mapping file named by ``dataset.json`` ``"genetics": {"individuals": ...}``, or ``None``."""
    if isinstance(genetics, dict) and genetics.get("individuals"):
        return Path(dataset_dir) / str(genetics["individuals"])
    return None


def load_individuals(path: str | os.PathLike) -> dict[str, str]:
    """``case_id,individual_id`` CSV → ``{case id: individual id}``.

    Raises:
        DatasetError: missing file, wrong header, duplicate case (file:line).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: individuals mapping named in dataset.json not found")
    mapping: dict[str, str] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:2]] != INDIVIDUALS_HEADER:
            raise DatasetError(f"{path}: expected the header 'case_id,individual_id'")
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) < 2 or not row[1].strip():
                raise DatasetError(f"{path}:{line}: expected 'case_id,individual_id'")
            case_id = row[0].strip()
            if case_id in mapping:
                raise DatasetError(f"{path}:{line}: duplicate case id {case_id!r}")
            mapping[case_id] = row[1].strip()
    return mapping


def case_groups(dataset_dir: str | os.PathLike, genetics: object, case_ids) -> dict[str, str] | None:
    """``{case id: individual id}`` for splitting by individual (cases absent from the mapping are their own
    individual), or ``None`` when the dataset has no mapping."""
    path = individuals_file(dataset_dir, genetics)
    if path is None:
        return None
    mapping = load_individuals(path)
    return {case_id: mapping.get(case_id, case_id) for case_id in case_ids}


# ------------------------------------------------------------------------------------------------- writers
def write_genetics_csv(path: str | os.PathLike, ids, columns, values: np.ndarray, id_header: str = "individual_id") -> None:
    """One modality as ``genetics/<name>.csv``: header ``id_header,col1,...``, one row per individual (atomic)."""
    values = np.asarray(values)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([id_header, *columns])
        integer = np.issubdtype(values.dtype, np.integer) or bool(np.all(values == np.round(values)))
        for identifier, row in zip(ids, values):
            writer.writerow([identifier, *(row.astype(np.int64).tolist() if integer else [f"{v:.6g}" for v in row])])


# ------------------------------------------------------------------------------------------------- readers
def mode_impute(values: np.ndarray) -> np.ndarray:
    """Replace NaNs in each column of ``(N, F)`` by that column's most frequent value (0 for an all-NaN column)."""
    values = np.array(values, dtype=np.float32, copy=True)
    missing = np.isnan(values)
    for column in np.flatnonzero(missing.any(0)):
        observed = values[~missing[:, column], column]
        if observed.size:
            levels, counts = np.unique(observed, return_counts=True)
            fill = levels[np.argmax(counts)]  # ties → smallest dosage (np.unique sorts)
        else:
            fill = 0.0
        values[missing[:, column], column] = fill
    return values


def read_bed(path: str | os.PathLike, every_k: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PLINK ``.bed`` (+ ``.bim``/``.fam`` beside it) → dosages of every ``every_k``-th SNP, mode-imputed.

    Returns:
        ``iid (N,)`` str, ``sid (S,)`` str, ``dosages (N, S)`` float32 in {0, 1, 2} (copies of allele A1).
    """
    open_bed = require("bed_reader", f"reading PLINK {path}").open_bed

    path = Path(path)
    if path.suffix != ".bed":
        path = path.with_suffix(".bed")
    for suffix in (".bed", ".bim", ".fam"):
        if not path.with_suffix(suffix).is_file():
            raise DatasetError(f"{path.with_suffix(suffix)}: PLINK file not found")
    if every_k < 1:
        raise DatasetError(f"{path}: every_k must be >= 1, got {every_k}")
    try:
        with open_bed(path) as bed:
            dosages = bed.read(index=np.s_[:, ::every_k], dtype="float32")
            iid, sid = np.asarray(bed.iid, dtype=str), np.asarray(bed.sid, dtype=str)[::every_k]
    except (ValueError, OSError) as error:
        raise DatasetError(f"{path}: unreadable PLINK .bed ({str(error).splitlines()[0][:200]})") from None
    return iid, sid, mode_impute(dosages)


def score_columns(header: list[str]) -> list[int]:
    """Indices of the score columns of a PLINK 2 ``.sscore`` header: every ``*_AVG`` column, or, in files written
    with ``cols=scoresums`` only, every ``*_SUM`` column except the allele-dosage total PLINK always adds."""
    averages = [i for i, name in enumerate(header) if name.endswith("_AVG")]
    if averages:
        return averages
    return [i for i, name in enumerate(header) if name.endswith("_SUM") and name != "NAMED_ALLELE_DOSAGE_SUM"]


def read_sscore(paths) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PLINK 2 ``.sscore`` files → every score column (:func:`score_columns`), z-scored, per individual.

    Individuals are those present in every file (intersection, sorted by first appearance). A file with one
    score gives the feature its file name (``PGS000018.sscore`` → ``PGS000018``); a file with several gives
    ``<file>:<column without _AVG/_SUM>`` (``all.sscore`` with ``SCORE2_AVG`` → ``all:SCORE2``).
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise DatasetError("read_sscore: no .sscore files given")
    tables: list[dict[str, list[float]]] = []
    names: list[str] = []
    for path in paths:
        if not path.is_file():
            raise DatasetError(f"{path}: .sscore file not found")
        lines = [line.split() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        header = [h.lstrip("#") for h in lines[0]] if lines else []
        columns = score_columns(header)
        if "IID" not in header or not columns:
            raise DatasetError(f"{path}: expected columns IID and score columns (SCORE1_AVG, PGS..._AVG or *_SUM) "
                               f"in the header, found {header}")
        iid = header.index("IID")
        table = {}
        for line_number, row in enumerate(lines[1:], start=2):
            try:
                table[row[iid]] = [float(row[column]) for column in columns]
            except (ValueError, IndexError):
                raise DatasetError(f"{path}:{line_number}: bad score row") from None
        tables.append(table)
        stem = path.name[: -len(".sscore")] if path.name.endswith(".sscore") else path.stem
        names += [stem] if len(columns) == 1 else [f"{stem}:{header[c][:-4]}" for c in columns]
    ids = [i for i in tables[0] if all(i in table for table in tables[1:])]
    values = np.array([[v for table in tables for v in table[i]] for i in ids], dtype=np.float64).reshape(len(ids), len(names))
    # z-score per PGS (ContIG): scores of different catalogues live on unrelated scales.
    values = (values - values.mean(0)) / np.maximum(values.std(0), 1e-12)
    return np.asarray(ids, dtype=str), np.asarray(names, dtype=str), values.astype(np.float32)


def read_burden(path: str | os.PathLike, min_carriers: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gene burden matrix (CSV: first column individual id, one column per gene; or h5 with datasets
    ``burden (N, G)``, ``individuals (N,)``, ``genes (G,)``) → genes carried by >= ``min_carriers`` individuals.

    A carrier has a non-zero burden. Values are kept as they are (ContIG does not normalise burden scores).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: burden file not found")
    if path.suffix in (".h5", ".hdf5"):
        import h5py

        try:
            with h5py.File(path, "r") as handle:
                for key in ("burden", "individuals", "genes"):
                    if key not in handle:
                        raise DatasetError(f"{path}: no '{key}' dataset (expected burden, individuals, genes)")
                values = np.asarray(handle["burden"][()], dtype=np.float32)
                ids = np.asarray([v.decode() if isinstance(v, bytes) else str(v) for v in handle["individuals"][()]])
                genes = np.asarray([v.decode() if isinstance(v, bytes) else str(v) for v in handle["genes"][()]])
        except OSError as error:
            raise DatasetError(f"{path}: not a readable h5 file ({error})") from None
    else:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = [row for row in csv.reader(handle) if row]
        if not rows or len(rows[0]) < 2:
            raise DatasetError(f"{path}: expected a header 'individual_id,gene1,...'")
        genes = np.asarray(rows[0][1:])
        ids = np.asarray([row[0] for row in rows[1:]])
        try:
            values = np.array([[float(v) for v in row[1:]] for row in rows[1:]], dtype=np.float32)
        except ValueError:
            raise DatasetError(f"{path}: non-numeric burden value") from None
    if values.shape != (len(ids), len(genes)):
        raise DatasetError(f"{path}: burden matrix {values.shape} does not match {len(ids)} individuals × {len(genes)} genes")
    keep = (values != 0).sum(0) >= min_carriers
    if not keep.any():
        raise DatasetError(f"{path}: no gene has >= {min_carriers} carriers among {len(ids)} individuals "
                           "(lower min_carriers)")
    return ids, genes[keep], values[:, keep]


def convert(source: str | os.PathLike, out_dir: str | os.PathLike, every_k: int = 100, min_carriers: int = 10) -> Path:
    """``medgap convert genetics SOURCE DATASET_DIR``: raw genetics files → ``DATASET_DIR/genetics/*.csv``.

    ``SOURCE`` holds any of: one PLINK fileset (``*.bed``) → ``raw_snps.csv`` (every ``every_k``-th SNP),
    ``*.sscore`` files → ``pgs.csv``, ``burden.h5``/``burden.csv`` → ``burden.csv``. ``DATASET_DIR`` must already
    be a dataset folder; existing ``genetics/`` files of the same name are refused, the source is never modified.
    """
    source, out_dir = Path(source), Path(out_dir)
    if not source.is_dir():
        raise DatasetError(f"{source}: genetics source folder not found")
    if not (out_dir / "dataset.json").is_file():
        raise DatasetError(f"{out_dir}: not a dataset folder (no dataset.json); convert the images first")
    outputs: dict[str, tuple] = {}
    beds = sorted(source.glob("*.bed"))
    if len(beds) > 1:
        raise DatasetError(f"{source}: more than one .bed fileset ({', '.join(b.name for b in beds)})")
    if beds:
        outputs["raw_snps"] = read_bed(beds[0], every_k)
    scores = sorted(source.glob("*.sscore"))
    if scores:
        outputs["pgs"] = read_sscore(scores)
    burden = [p for p in (source / "burden.h5", source / "burden.csv") if p.is_file()]
    if burden:
        outputs["burden"] = read_burden(burden[0], min_carriers)
    if not outputs:
        raise DatasetError(f"{source}: no .bed, .sscore or burden.h5/.csv files")
    for name in outputs:
        if (out_dir / "genetics" / f"{name}.csv").exists():
            raise DatasetError(f"{out_dir / 'genetics' / (name + '.csv')}: exists; remove it or convert into a copy")
    for name, (ids, columns, values) in outputs.items():
        write_genetics_csv(out_dir / "genetics" / f"{name}.csv", ids, columns, values)
    return out_dir


DESCRIPTION = "PLINK .bed / PGS .sscore / burden h5|csv → genetics/*.csv of an existing dataset folder"
