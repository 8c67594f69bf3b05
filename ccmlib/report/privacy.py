"""Pseudonymous patient keys (HMAC with a secret salt kept outside the report) and PHI removal."""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

import pandas as pd

SALT_ENV = "CCM_AUDIT_SALT_FILE"


def salt_path(reports_root: Path) -> Path:
    return Path(os.environ.get(SALT_ENV) or (Path(reports_root) / ".ccm-audit-salt"))


def load_salt(reports_root: Path) -> bytes:
    """The secret salt, created (mode 600) on first use; never written into a report."""
    p = salt_path(reports_root)
    if not p.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(secrets.token_hex(32), encoding="ascii")
        p.chmod(0o600)
    return bytes.fromhex(p.read_text(encoding="ascii").strip())


def patient_keys(ids: pd.Series, salt: bytes, practice: str) -> pd.Series:
    """Stable per practice and salt: PT- plus 10 hex digits of HMAC-SHA256(practice|patient_id)."""
    uniq = ids.dropna().astype(str).unique()
    key = {u: "PT-" + hmac.new(salt, f"{practice}|{u}".encode(), hashlib.sha256).hexdigest()[:10] for u in uniq}
    return ids.astype("string").map(key)


def pseudonymize(df: pd.DataFrame, salt: bytes, practice: str, column: str = "patient_id") -> pd.DataFrame:
    if column not in df.columns:
        return df
    return df.assign(**{column: patient_keys(df[column], salt, practice)}).rename(columns={column: "patient_key"})
