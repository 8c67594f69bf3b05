"""Pseudonymous patient keys (HMAC with a secret salt kept outside the report) and PHI removal."""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

import pandas as pd

SALT_ENV = "CCM_AUDIT_SALT_FILE"


def engagement_root(out) -> Path:
    """The folder that holds an engagement's run ledger and salt: the parent of a report, batch or pre-bill folder, so
    that ``report --out reports/q3``, ``batch --out reports/batch`` and ``prebill --out reports/pb`` key a patient the
    same way."""
    return Path(out).resolve().parent


def salt_path(reports_root: Path) -> Path:
    return Path(os.environ.get(SALT_ENV) or (Path(reports_root) / ".ccm-audit-salt"))


def load_salt(reports_root: Path) -> bytes:
    """The secret salt, created on first use with owner-only permissions (mode 600, never readable by others even
    for an instant: created under a unique name with that mode, then linked into place, so two runs starting
    together agree on one salt); never written into a report."""
    p = salt_path(reports_root)
    if not p.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f"{p.name}.{secrets.token_hex(6)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(secrets.token_hex(32))
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, p)  # atomic, and fails if another run created it first: then use theirs
            except FileExistsError:
                pass
        finally:
            tmp.unlink(missing_ok=True)
    try:
        return bytes.fromhex(p.read_text(encoding="ascii").strip())
    except (ValueError, UnicodeDecodeError):
        from ccmlib.errors import InputError
        raise InputError(f"{p}: not a ccm-audit salt file (expected 64 hex digits); move it away to start a new one") from None


def ephemeral_salt() -> bytes:
    """A salt that lives only in memory: keys stable within one session and meaningless after it."""
    return secrets.token_bytes(32)


def patient_keys(ids: pd.Series, salt: bytes, practice: str) -> pd.Series:
    """Stable per practice and salt: PT- plus 10 hex digits of HMAC-SHA256(practice|patient_id)."""
    uniq = ids.dropna().astype(str).unique()
    key = {u: "PT-" + hmac.new(salt, f"{practice}|{u}".encode(), hashlib.sha256).hexdigest()[:10] for u in uniq}
    return ids.astype("string").map(key)


#: columns that embed a raw patient id inside a longer value; left out of anything shown
EMBEDDED_ID_COLUMNS = ("finding_key",)


def pseudonymize(df: pd.DataFrame, salt: bytes, practice: str, column: str = "patient_id") -> pd.DataFrame:
    df = df.drop(columns=[c for c in EMBEDDED_ID_COLUMNS if c in df.columns])
    if column not in df.columns:
        return df
    return df.assign(**{column: patient_keys(df[column], salt, practice)}).rename(columns={column: "patient_key"})
