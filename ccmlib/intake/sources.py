"""Read a practice data folder: find the files, read them as text, apply ``mapping.yml``.

Every row keeps its source line (``_line``) so a rejected or flagged row can be named in the
data-quality table. Parsing and validation live in :mod:`ccmlib.validate`.
"""
from __future__ import annotations

import csv
import hashlib
import io as _io
import os
import threading
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
    for book in books:  # one workbook with a sheet per table, or a workbook per table named after it (claims.xlsx)
        try:
            sheets = pd.ExcelFile(book, engine="openpyxl").sheet_names
        except Exception as exc:  # zip/xml errors from a damaged or mislabelled file
            raise InputError(f"{book}: cannot be opened as an Excel workbook ({exc})") from None
        own = book.stem.strip().lower()
        used = [sh for sh in sheets if not sh.strip().lower().startswith(IGNORED_SHEET_PREFIXES)]
        if own in TABLES and not any(sh.strip().lower() in TABLES for sh in used):
            if len(used) != 1:
                raise InputError(f"{book}: a workbook named after the {own} table holds it on one sheet; it has "
                                 f"{len(used)} ({', '.join(used) or 'none'}): keep one, or start the others' names with README or _")
            pairs = [(own, used[0])]
        else:
            pairs = []
            for sheet in used:
                key = sheet.strip().lower()
                if key not in TABLES:
                    raise InputError(
                        f"{book}: unknown sheet '{sheet}'; sheet names must be table names "
                        f"({', '.join(TABLES)}), or start with README or _ to be ignored (or name a one-table workbook "
                        f"after its table, like claims.xlsx)")
                pairs.append((key, sheet))
        for key, sheet in pairs:
            if key in found:
                where = found[key].path.name + (f" sheet '{found[key].sheet}'" if found[key].sheet else "")
                raise InputError(f"{folder}: table {key} is both in {where} and in sheet '{sheet}' of {book.name}; keep one")
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
    for key in FOLDER_SETTINGS:
        if key in data:
            data[key] = _setting(key, data[key], f"{path}")
    if "encounters_from" in data:
        data["encounters_from"] = encounters_from_setting(data["encounters_from"], f"{path}")
    for table, spec in data.items():
        if table in FOLDER_SETTINGS + FOLDER_ONLY:
            continue
        if table not in TABLES:
            raise InputError(f"{path}: unknown table '{table}' (known: {', '.join(TABLES)}; folder-wide settings: "
                             f"{', '.join(FOLDER_SETTINGS + FOLDER_ONLY)})")
        if spec is None:
            continue
        if not isinstance(spec, dict) or set(spec) - {"columns", "values", *FOLDER_SETTINGS}:
            raise InputError(f"{path}: table '{table}' may have only 'columns', 'values', 'dates' and 'csv' entries")
        for key in FOLDER_SETTINGS:
            if key in spec:
                spec[key] = _setting(key, spec[key], f"{path}: {table}")
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


FOLDER_SETTINGS = ("dates", "csv")
#: settings of the whole folder only: ``encounters_from: YYYY-MM-DD``, the day the visit history (encounters and visit
#: claims) begins, so that IV-01 is not assessed for a window that begins before it (catalog v3)
FOLDER_ONLY = ("encounters_from",)
CSV_KEYS = {"separator", "quote", "encoding"}
SEPARATORS = (",", ";", "\t", "|")


def _setting(key: str, value, where: str):
    """mapping.yml's ``dates: FORMAT`` or ``csv: {separator, quote, encoding}``, checked."""
    from ccmlib.intake import dates

    if key == "dates":
        return dates.check_format(value, where)
    if not isinstance(value, dict) or set(value) - CSV_KEYS:
        raise InputError(f"{where}: csv: must map some of {', '.join(sorted(CSV_KEYS))} to values (like {{separator: ';', "
                         f"encoding: cp1252}})")
    out = {k: str(v) for k, v in value.items()}
    if "separator" in out:
        out["separator"] = {"tab": "\t", "\\t": "\t"}.get(out["separator"].lower(), out["separator"])
        if len(out["separator"]) != 1:
            raise InputError(f"{where}: csv: separator {value['separator']!r} must be one character (or tab)")
    if "quote" in out and len(out["quote"]) != 1:
        raise InputError(f"{where}: csv: quote {value['quote']!r} must be one character")
    if "encoding" in out:
        import codecs
        try:
            codecs.lookup(out["encoding"])
        except LookupError:
            raise InputError(f"{where}: csv: encoding {value['encoding']!r} is not an encoding Python knows (utf-8, cp1252, "
                             f"latin-1, utf-16 ...)") from None
    return out


def encounters_from_setting(value, where: str):
    """mapping.yml's ``encounters_from``: a date written YYYY-MM-DD (YAML reads an unquoted one as a date)."""
    import datetime as dt

    from ccmlib.intake.dates import option_date

    if isinstance(value, dt.date):
        return value if not isinstance(value, dt.datetime) else value.date()
    if value is None or isinstance(value, (bool, int, float, list, dict)):
        raise InputError(f"{where}: encounters_from: {value!r} is not a date; write the day the visit history begins as "
                         f"YYYY-MM-DD (like encounters_from: 2024-01-01)")
    return option_date(str(value), f"{where}: encounters_from")


def encounters_from(folder) -> "datetime.date | None":
    """The ``encounters_from`` date a practice folder's mapping.yml declares (None without one, or for a practice held
    in memory)."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    return load_mapping(folder).get("encounters_from")


def table_settings(mapping: dict, table: str) -> dict:
    """The ``dates`` and ``csv`` settings for one table: its own, else the folder's."""
    spec = mapping.get(table) or {}
    return {"dates": spec.get("dates", mapping.get("dates")), "csv": {**(mapping.get("csv") or {}), **(spec.get("csv") or {})}}


def sniff_separator(header: str) -> str:
    """The separator of a CSV from its header line: the most frequent of , ; tab | (comma when none)."""
    counts = {c: header.count(c) for c in SEPARATORS}
    best = max(counts, key=lambda c: (counts[c], c == ","))
    return best if counts[best] else ","


def _csv_lines(data: bytes, n_rows: int, sep: str = ",", quote: str = '"') -> pd.Series | None:
    """Physical line number of each record when quoted fields span lines (else None: line = row + 2)."""
    physical = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    if physical <= n_rows + 1:
        return None
    reader = csv.reader(_io.StringIO(data.decode("utf-8-sig")), delimiter=sep, quotechar=quote)
    starts = []
    next(reader, None)
    line = reader.line_num + 1
    for row in reader:
        if row and not (len(row) == 1 and not row[0].strip()):  # pandas skips blank and whitespace-only lines too
            starts.append(line)
        line = reader.line_num + 1
    return pd.Series(starts[:n_rows], dtype="int64")


def read_raw(src: Source, csv_opts: dict | None = None) -> pd.DataFrame:
    """Read one table as text columns (Parquet keeps its types), with a ``_line`` column. A CSV's separator is sniffed
    from its header line (, ; tab |) unless ``csv_opts`` (mapping.yml's ``csv:``) names it, with its quote character
    and encoding (UTF-8, with or without a BOM, by default)."""
    path = src.path
    opts = csv_opts or {}
    if src.fmt == "csv":
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InputError(f"{path}: cannot be read ({exc.strerror})") from None
        if opts.get("encoding"):
            try:
                data = data.decode(opts["encoding"]).encode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"{path}: not {opts['encoding']} text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}), "
                                 f"as mapping.yml's csv: encoding says") from None
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise InputError(f"{path}: UTF-16 text; save the file as UTF-8, or add `csv: {{encoding: utf-16}}` to mapping.yml")
        if not data.strip():
            raise InputError(f"{path}: file is empty (expected a header line naming the columns)")
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[:exc.start].count(b"\n") + 1
            raise InputError(f"{path}: not UTF-8 text (line {line}: byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                             f"save the file as UTF-8, or name its encoding in mapping.yml (`csv: {{encoding: cp1252}}` for a "
                             f"Windows export)") from None
        header = data.decode("utf-8-sig").split("\n", 1)[0].rstrip("\r")
        sep = opts.get("separator") or sniff_separator(header)
        quote = opts.get("quote") or '"'
        try:
            df = pd.read_csv(_io.BytesIO(data), dtype=str, keep_default_na=False, encoding="utf-8-sig", sep=sep, quotechar=quote)
        except pd.errors.ParserError as exc:
            raise InputError(f"{path}: cannot be read as CSV with separator {sep!r} ({exc}); name the separator in mapping.yml "
                             f"(`csv: {{separator: ';'}}`) if it is another") from None
        _no_duplicate_columns(next(csv.reader(_io.StringIO(header), delimiter=sep, quotechar=quote)), path)
        lines = _csv_lines(data, len(df), sep, quote)
        df["_line"] = lines.to_numpy() if lines is not None else pd.RangeIndex(2, len(df) + 2)
    elif src.fmt == "parquet":
        try:
            df = _read_parquet(path)
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


def _read_parquet(path: Path) -> pd.DataFrame:
    """``pd.read_parquet(path)``, the same frame, with less memory and system time: the file's column chunks are not
    all buffered first (``pre_buffer``), each Arrow column is released as soon as pandas holds it (``self_destruct``),
    and the Arrow buffers are allocated by jemalloc while the file is read (the default mimalloc pool spent 2-4 s of
    system time in page faults on the 1M practice's 1.3 GB time entries, jemalloc 0.7 s). A buffer keeps the pool
    that allocated it, so the default pool is safely put back afterwards."""
    import pyarrow as pa

    try:
        pool = pa.jemalloc_memory_pool()
        pa.jemalloc_set_decay_ms(0)  # pages of the buffers freed while reading go back at once (lower peak)
    except NotImplementedError:  # a pyarrow built without jemalloc
        pool = None
    with _POOL_SWITCH:  # two threads reading at once cannot leave jemalloc the default pool
        before = pa.default_memory_pool()
        if pool is not None:
            pa.set_memory_pool(pool)
        try:
            return pd.read_parquet(path, pre_buffer=False, to_pandas_kwargs={"self_destruct": True, "split_blocks": True})
        finally:
            if pool is not None:
                pa.set_memory_pool(before)


_POOL_SWITCH = threading.Lock()


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
