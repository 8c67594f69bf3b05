"""Load a practice data folder into typed tables plus a data-quality table."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ccmlib import paths
from ccmlib.errors import InputError
from ccmlib.paths import map_ordered, usable_cores
from ccmlib.intake import sources as io
from ccmlib.intake.fastops import positions
from ccmlib.intake.schema import TABLES
from ccmlib.intake.validate import DQ_COLUMNS, empty_quality, validate_table


@dataclass
class Practice:
    """Typed tables of one practice, the data-quality table and what was read from where."""

    folder: Path
    tables: dict[str, pd.DataFrame]
    quality: pd.DataFrame
    inputs: list[dict] = field(default_factory=list)
    ingest: dict | None = None  # ingest.json of a folder `ccm-audit ingest` built: the source files (837/835/FHIR) and their hashes
    ingest_quality: pd.DataFrame | None = None  # the records ingest could not map, with the paid dollars they hold

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]

    def has(self, name: str) -> bool:
        return name in self.tables

    def counts(self) -> pd.DataFrame:
        """Rows read, accepted and rejected per input table (read = accepted + rejected)."""
        return pd.DataFrame(self.inputs)[["table", "file", "rows_read", "rows_accepted", "rows_rejected"]]


def _unknown_patients(tables: dict[str, pd.DataFrame], labels: dict[str, str]) -> list[pd.DataFrame]:
    if "patients" not in tables:
        return []
    names = [name for name, df in tables.items() if TABLES[name].patient_ref and len(df)]
    found = _known([tables[name]["patient_id"] for name in names], tables["patients"]["patient_id"])
    return [unknown_patient_rows(name, tables[name], ~ok, labels[name]) for name, ok in zip(names, found) if not ok.all()]


def unknown_patient_rows(name: str, df: pd.DataFrame, bad: np.ndarray, label: str) -> pd.DataFrame:
    """The data-quality rows of the rows ``bad`` of table ``name`` (read from ``label``): a patient id the patients
    table lacks."""
    return pd.DataFrame({"table": name, "file": label, "line": df.loc[bad, "_line"].to_numpy(), "column": "patient_id",
                         "problem": "patient_id not in the patients table (row kept; check the export)",
                         "value": df.loc[bad, "patient_id"].astype("string").to_numpy(), "action": "flagged"})


def _known(columns: list[pd.Series], known: pd.Series) -> list[np.ndarray]:
    """For each id of each column, whether it is a non-missing value of ``known``: one Arrow hash lookup of all the
    columns' chunks in place, the patients hashed once (``positions`` for a column stored otherwise; isin on Arrow
    strings is slow)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arrays = [getattr(s.array, "_pa_array", None) for s in columns]
    value_set = getattr(known.array, "_pa_array", None)
    if value_set is not None and all(a is not None and a.type == value_set.type for a in arrays) and \
            pa.types.is_large_string(value_set.type):
        chunks = [ch for a in arrays for ch in (a.chunks if isinstance(a, pa.ChunkedArray) else [a])]
        found = pc.is_in(pa.chunked_array(chunks, type=value_set.type), value_set=pc.drop_null(value_set).combine_chunks())
        found = found.to_numpy(zero_copy_only=False).astype(bool, copy=False)  # a missing id is not found
        return np.split(found, np.cumsum([len(s) for s in columns])[:-1])
    keys = known.dropna().unique()
    return [positions(s, keys) >= 0 for s in columns]


#: bytes of input files from which a practice's tables are read two at a time
PARALLEL_LOAD_FROM = 8 * 2 ** 20


def _size(src) -> int:
    try:
        return Path(src.path).stat().st_size
    except OSError:
        return 0


def load_practice(folder: str | Path, progress: bool = False) -> Practice:
    """Read, map, type and validate every table of a practice folder.

    Raises :class:`~ccmlib.errors.InputError` for a file that cannot be used at all (missing
    required column, not UTF-8, empty, unknown sheet); bad rows go to ``Practice.quality``.
    """
    folder = Path(folder)
    tables, quality, inputs, labels = {}, [], [], {}
    for name, accepted, dq, record in load_tables(folder, progress):
        tables[name], labels[name] = accepted, record["file"]
        quality.append(dq)
        inputs.append(record)
    quality.extend(_unknown_patients(tables, labels))
    ingest, dq = finish_quality(folder, tables, quality)
    return Practice(folder, tables, dq, inputs, *ingest)


def load_tables(folder: Path, progress: bool = False, threads: int | None = None):
    """Each table of a practice folder read, mapped, typed and validated, in the contract's order: (name, accepted
    rows, data-quality rows, input record). ``threads`` (default: two for a large folder) tables are read at once."""
    sources = io.find_sources(folder)
    mapping = io.load_mapping(folder)
    items = list(sources.items())
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(items), desc="loading tables", unit="table", leave=False, disable=paths.progress_off())

    def one(item):
        name, src = item
        settings = io.table_settings(mapping, name)
        raw = io.read_raw(src, settings["csv"])
        raw = io.apply_mapping(raw, mapping.get(name) or {}, src)
        n_read = len(raw)
        accepted, dq = validate_table(TABLES[name], raw, str(src.path) if src.sheet is None else f"{src.path}[{src.sheet}]",
                                      settings["dates"], consume=True)
        del raw  # its rows' numbers and any column the contract does not know: the typed table holds them now
        if n_read and not len(accepted):
            raise InputError(all_rejected(name, str(src.path) if src.sheet is None else f"{src.path}[{src.sheet}]", dq, n_read))
        return accepted, dq, n_read, io.sha256(src.path)

    # a large folder's tables are read two at a time (threads: Arrow's readers and kernels and the hashing let go of the
    # interpreter); the tables, their data-quality rows and the first error come in the folder's order either way
    if threads is None:
        threads = 2 if usable_cores() >= 2 and sum(_size(src) for _, src in items) >= PARALLEL_LOAD_FROM else 1
    results = map_ordered(one, items, threads)
    try:
        for name, src in items:
            accepted, dq, n_read, digest = next(results)  # (not zip: it would hold a table while the next is read)
            label = src.label
            dq["file"] = label
            yield name, accepted, dq, {"table": name, "file": label, "path": str(src.path), "sha256": digest,
                                       "rows_read": int(n_read), "rows_accepted": int(len(accepted)),
                                       "rows_rejected": int(n_read - len(accepted))}
            del accepted, dq  # not held while the next table is read (a caller may have let go of it)
            if bar is not None:
                bar.update()
    finally:
        results.close()
        if bar is not None:
            bar.close()


def finish_quality(folder: Path, tables, quality: list[pd.DataFrame]) -> tuple[tuple, pd.DataFrame]:
    """The practice's data-quality table from its tables' rows (``quality``): with a note for each table not provided
    (``tables`` names those that were) and the rows of the folder's ingest, sorted; and ((ingest.json, its rows))."""
    quality = list(quality)
    for name in TABLES:
        if name not in tables:
            quality.append(pd.DataFrame([{"table": name, "file": "", "line": np.nan, "column": "",
                                          "problem": "table not provided: checks that need it report that they could not run",
                                          "value": "", "action": "note"}]))
    ingest, ingest_dq = read_ingest(folder)
    if ingest_dq is not None and len(ingest_dq):  # the trail from the source files: ingest's rows are this run's rows too
        quality.append(ingest_dq.assign(table=ingest_dq["table"].replace("", "sources"))[DQ_COLUMNS])
    quality = [q for q in quality if len(q)]
    dq = pd.concat(quality, ignore_index=True)[DQ_COLUMNS] if quality else empty_quality()
    return (ingest, ingest_dq), sort_quality(dq)


def read_ingest(folder: Path) -> tuple[dict | None, pd.DataFrame | None]:
    """ingest.json and the data-quality rows of a folder that `ccm-audit ingest` wrote (None, None for any other)."""
    import json

    doc_path, dq_path = folder / "ingest.json", folder / "data_quality.csv"
    if not doc_path.is_file():
        return None, None
    try:
        doc = json.loads(doc_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InputError(f"{doc_path}: not the ingest.json `ccm-audit ingest` writes ({exc})") from None
    doc["sha256"] = io.sha256(doc_path)
    if not dq_path.is_file():
        return doc, None
    dq = pd.read_csv(dq_path, dtype=str, keep_default_na=False)
    if "position" in dq.columns and "column" not in dq.columns:  # written before ingest used the contract's layout
        dq = dq.rename(columns={"record": "value"}).assign(column=dq["position"])
    missing = [c for c in DQ_COLUMNS if c not in dq.columns]
    if missing:
        raise InputError(f"{dq_path}: lacks column(s) {', '.join(missing)} of a data-quality table")
    dq = dq.assign(file=dq["file"].map(lambda f: Path(f).name if f else f), line=pd.to_numeric(dq["line"], errors="coerce"),
                   paid_amount=pd.to_numeric(dq.get("paid_amount", 0), errors="coerce").fillna(0.0))
    doc["data_quality_sha256"] = io.sha256(dq_path)
    return doc, dq


def all_rejected(table: str, label: str, dq: pd.DataFrame, rows: int) -> str:
    """The message when every row of a table was rejected: its most common problem, with a line and value."""
    rej = dq[dq["action"] == "rejected"]
    top = rej.groupby(["column", "problem"], sort=False).size().sort_values(ascending=False)
    (column, problem), n = top.index[0], int(top.iloc[0])
    first = rej[(rej["column"] == column) & (rej["problem"] == problem)].iloc[0]
    return (f"{label}: every one of the {rows:,} rows of the {table} table was rejected; nothing of it can be audited. Most "
            f"common problem ({n:,} rows), column {column}: {problem} (line {first['line']}: {first['value']!r})")


def sort_quality(dq: pd.DataFrame) -> pd.DataFrame:
    if len(dq) < 2:  # nothing to order (most small practices): the same columns, without the sort's steps
        return dq.assign(line=pd.to_numeric(dq["line"], errors="coerce").astype("Int64")).reset_index(drop=True)
    order = {n: i for i, n in enumerate(TABLES)}
    dq = dq.assign(_t=dq["table"].map(order).fillna(99), line=pd.to_numeric(dq["line"], errors="coerce").astype("Int64"))
    return dq.sort_values(["_t", "line", "column", "problem"], kind="mergesort", na_position="first").drop(columns="_t").reset_index(drop=True)
