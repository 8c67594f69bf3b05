"""Read a practice data folder: find the files, read them as text, apply ``mapping.yml``.

Every row keeps its source line (``_line``) so a rejected or flagged row can be named in the
data-quality table. Parsing and validation live in :mod:`ccmlib.validate`.
"""
from __future__ import annotations

import csv
import hashlib
import io as _io
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from ccmlib.errors import InputError
from ccmlib.intake.schema import TABLES

IGNORED_SHEET_PREFIXES = ("readme", "_", "instructions")


@dataclass
class Source:
    table: str
    path: Path
    fmt: str  # csv | parquet | xlsx
    sheet: str | None = None

    @property
    def label(self) -> str:
        return f"{self.path.name}[{self.sheet}]" if self.sheet else self.path.name


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def find_sources(folder: str | Path) -> dict[str, Source]:
    """Locate each table's file in a practice folder (CSV, Parquet, or one Excel workbook)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder (expected a practice data folder with patients.csv, time_entries.csv, ...)")
    found: dict[str, Source] = {}
    for name in TABLES:
        for ext in ("csv", "parquet"):
            p = folder / f"{name}.{ext}"
            if os.path.lexists(p) and not p.is_file():
                what = "a folder" if p.is_dir() else "a broken or looping symbolic link" if p.is_symlink() else "not a regular file"
                raise InputError(f"{p}: is {what}, not a readable {ext.upper()} file; fix or remove it")
        hits = [Source(name, folder / f"{name}.{ext}", ext) for ext in ("csv", "parquet") if (folder / f"{name}.{ext}").is_file()]
        if len(hits) > 1:
            raise InputError(f"{folder}: both {hits[0].path.name} and {hits[1].path.name} exist; keep one file per table")
        if hits:
            found[name] = hits[0]
    books = sorted(p for p in folder.glob("*.xlsx") if not p.name.startswith("~$"))
    if len(books) > 1:
        raise InputError(f"{folder}: more than one Excel workbook ({', '.join(b.name for b in books)}); keep one")
    if books:
        book = books[0]
        try:
            sheets = pd.ExcelFile(book, engine="openpyxl").sheet_names
        except Exception as exc:  # zip/xml errors from a damaged or mislabelled file
            raise InputError(f"{book}: cannot be opened as an Excel workbook ({exc})") from None
        for sheet in sheets:
            key = sheet.strip().lower()
            if key.startswith(IGNORED_SHEET_PREFIXES):
                continue
            if key not in TABLES:
                raise InputError(
                    f"{book}: unknown sheet '{sheet}'; sheet names must be table names "
                    f"({', '.join(TABLES)}), or start with README or _ to be ignored")
            if key in found:
                raise InputError(f"{folder}: table {key} is both in {found[key].path.name} and in sheet '{sheet}' of {book.name}")
            found[key] = Source(key, book, "xlsx", sheet)
    if not found:
        raise InputError(f"{folder}: no practice tables found (expected files such as patients.csv, "
                         f"time_entries.csv, claims.csv, or one .xlsx workbook with those sheets)")
    return found


def load_mapping(folder: Path) -> dict:
    path = folder / "mapping.yml"
    if not os.path.lexists(path):
        return {}
    if not path.is_file():
        raise InputError(f"{path}: is not a readable file (a folder, or a broken or looping symbolic link); fix or remove it")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping of table names to {{columns: ..., values: ...}}")
    for table, spec in data.items():
        if table not in TABLES:
            raise InputError(f"{path}: unknown table '{table}' (known: {', '.join(TABLES)})")
        if spec is None:
            continue
        if not isinstance(spec, dict) or set(spec) - {"columns", "values"}:
            raise InputError(f"{path}: table '{table}' must have only 'columns' and 'values' entries")
        known = TABLES[table].columns
        cols = spec.get("columns") or {}
        if not isinstance(cols, dict):
            raise InputError(f"{path}: {table}.columns must map source column names to contract names "
                             f"(like {{Pt MRN: patient_id}}), not a {type(cols).__name__}")
        unknown = [str(v) for v in cols.values() if str(v).strip() not in known]
        if unknown:
            raise InputError(f"{path}: {table}.columns maps to unknown column(s) {', '.join(unknown)}; "
                             f"the {table} table's columns are: {', '.join(known)}")
        targets = [str(v).strip() for v in cols.values()]
        twice = sorted({t for t in targets if targets.count(t) > 1})
        if twice:
            raise InputError(f"{path}: {table}.columns maps several source columns to {', '.join(twice)}; map one")
        vals = spec.get("values") or {}
        if not isinstance(vals, dict):
            raise InputError(f"{path}: {table}.values must map a column name to {{source value: contract value}}, "
                             f"not a {type(vals).__name__}")
        for col, codes in vals.items():
            if str(col).strip() not in known:
                raise InputError(f"{path}: {table}.values recodes unknown column '{col}'; the {table} table's columns are: "
                                 f"{', '.join(known)}")
            if not isinstance(codes, dict):
                raise InputError(f"{path}: {table}.values.{col} must map source values to contract values "
                                 f"(like {{\"Med Rec\": medication_reconciliation}}), not a {type(codes).__name__}")
    return data


def _csv_lines(data: bytes, n_rows: int) -> pd.Series | None:
    """Physical line number of each record when quoted fields span lines (else None: line = row + 2)."""
    physical = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    if physical <= n_rows + 1:
        return None
    reader = csv.reader(_io.StringIO(data.decode("utf-8-sig")))
    starts = []
    next(reader, None)
    line = reader.line_num + 1
    for row in reader:
        if row and not (len(row) == 1 and not row[0].strip()):  # pandas skips blank and whitespace-only lines too
            starts.append(line)
        line = reader.line_num + 1
    return pd.Series(starts[:n_rows], dtype="int64")


def read_raw(src: Source) -> pd.DataFrame:
    """Read one table as text columns (Parquet keeps its types), with a ``_line`` column."""
    path = src.path
    if src.fmt == "csv":
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InputError(f"{path}: cannot be read ({exc.strerror})") from None
        if not data.strip():
            raise InputError(f"{path}: file is empty (expected a header line naming the columns)")
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[:exc.start].count(b"\n") + 1
            raise InputError(f"{path}: not UTF-8 text (line {line}: byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                             f"save the file as UTF-8") from None
        try:
            df = pd.read_csv(_io.BytesIO(data), dtype=str, keep_default_na=False, encoding="utf-8-sig")
        except pd.errors.ParserError as exc:
            raise InputError(f"{path}: cannot be read as CSV ({exc})") from None
        _no_duplicate_columns(next(csv.reader(_io.StringIO(data.decode("utf-8-sig").split("\n", 1)[0]))), path)
        lines = _csv_lines(data, len(df))
        df["_line"] = lines.to_numpy() if lines is not None else pd.RangeIndex(2, len(df) + 2)
    elif src.fmt == "parquet":
        try:
            df = pd.read_parquet(path)
        except Exception as exc:
            raise InputError(f"{path}: cannot be read as Parquet ({exc})") from None
        df = df.reset_index(drop=True)
        df["_line"] = pd.RangeIndex(1, len(df) + 1)  # Parquet has no lines: 1-based row number
    else:
        head = pd.read_excel(path, sheet_name=src.sheet, header=None, nrows=1, dtype=str, keep_default_na=False, engine="openpyxl")
        _no_duplicate_columns(head.iloc[0].tolist() if len(head) else [], f"{path}[{src.sheet}]")
        df = pd.read_excel(path, sheet_name=src.sheet, dtype=str, keep_default_na=False, engine="openpyxl")
        df["_line"] = pd.RangeIndex(2, len(df) + 2)  # row 1 holds the header
    df.columns = [str(c).strip() for c in df.columns]
    if len(df.columns) <= 1 and src.fmt != "parquet":
        raise InputError(f"{src.path}{'[' + src.sheet + ']' if src.sheet else ''}: no header line with column names")
    return df


def _no_duplicate_columns(header: list, where) -> None:
    names = [str(c).strip() for c in header if str(c).strip()]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(f"{where}: column(s) {', '.join(dupes)} appear more than once in the header line; "
                         f"keep one column per name")


def apply_mapping(df: pd.DataFrame, spec: dict, src: Source) -> pd.DataFrame:
    """Rename columns and recode values as ``mapping.yml`` says for this table."""
    renames = {str(k).strip(): str(v).strip() for k, v in (spec.get("columns") or {}).items()}
    if renames:
        df = df.rename(columns=renames)
    dupes = df.columns[df.columns.duplicated()].tolist()
    if dupes:
        raise InputError(f"{src.path}: column(s) {', '.join(dupes)} appear twice (after mapping.yml renames)")
    for col, codes in (spec.get("values") or {}).items():
        if col not in df.columns:
            raise InputError(f"{src.path}: mapping.yml recodes values of '{col}', which the {src.table} table does not have")
        df[col] = df[col].replace({str(k): str(v) for k, v in codes.items()})
    return df
