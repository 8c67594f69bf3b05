"""Profiles (catalog variants, ``ccm-rules.md`` v3): severities and pricing as data, never a rule's meaning.

A profile is a small YAML file: ``name``, ``description``, ``extends`` (a built-in profile's name, or another file,
relative to this one), ``severity`` (rule id -> ``error`` or ``warning``), ``rules_off`` (rule ids that do not run) and
``pricing`` (``fee_schedule``: paid_amount, else the fee schedule, as the catalog prices; ``paid_only``: paid_amount
is the only price). Built in (``ccmlib/reference/profiles/``): ``medicare-ffs`` (the default: the catalog as written),
``strict-mac`` and ``medicare-advantage``. ``--profile NAME_OR_FILE`` chooses one; :func:`load_profile` reads it,
resolves ``extends`` and validates every key strictly (an :class:`~ccmlib.errors.InputError` names the file, the line,
the key and the bad value); :func:`apply` gives the rule findings the profile's severities.

A rule raised to ``error`` takes units by the scope of its findings, as the errors of its group do
(:func:`ccmlib.engine.money.expand_effects`): a practitioner's consent finding (CONS-06) the time-based lines of that
practitioner, like CONS-02; a patient-month finding (DOC-02's late-signed plan) every time-based line of the month,
like DOC-01; a time-entry finding (SUP-01, DOC-02's unsigned entry) the month's time-based lines that the entry's
minutes count toward (a clinical staff member's minutes: the staff codes 99490, 99439, 99487, 99489 and G0511; a
practitioner's: 99491 and 99437 too), and nothing when the entry's minutes did not count at all.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ccmlib.errors import InputError

DEFAULT = "medicare-ffs"
KEYS = ("name", "description", "extends", "severity", "rules_off", "pricing")
#: how claim lines are priced: the catalog's way (paid_amount, else the fee schedule) or the plan's payment only
PRICING = ("fee_schedule", "paid_only")
SEVERITIES = ("error", "warning")


@dataclass(frozen=True)
class Profile:
    name: str
    description: str = ""
    severity: dict = field(default_factory=dict)  # rule id -> severity, resolved over the extends chain
    off: tuple = ()  # rule ids that do not run
    pricing: str = "fee_schedule"
    files: tuple = ()  # ({"file", "sha256"}, ...) from this profile's file to the root of its extends chain

    @property
    def sha256(self) -> str | None:
        return self.files[0]["sha256"] if self.files else None

    def changes(self, catalog: dict) -> dict:
        """rule id -> (catalog severity, profile severity) for every rule whose severity the profile changes."""
        return {r: (catalog[r].severity, s) for r, s in sorted(self.severity.items()) if catalog[r].severity != s}

    def to_json(self) -> dict:
        """run.json's ``profile``: what was chosen, from which file(s) with their hashes, and the resolved overrides."""
        return {"name": self.name, "description": self.description, "file": self.files[0]["file"] if self.files else None,
                "sha256": self.sha256, "extends": [f["file"] for f in self.files[1:]], "files": list(self.files),
                "severity": dict(sorted(self.severity.items())), "rules_off": list(self.off), "pricing": self.pricing}


def builtin_dir() -> Path:
    return Path(str(resources.files("ccmlib") / "reference" / "profiles"))


def builtins() -> list[str]:
    return sorted(p.stem for p in builtin_dir().glob("*.yml"))


def _label(path: Path) -> str:
    """How a profile file is named in run.json and messages: built-ins by name (the same on every machine), a user's
    file by its full path."""
    return f"(built in) {path.name}" if path.parent.resolve() == builtin_dir().resolve() else str(path.resolve())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _where(path: Path, line: int | None) -> str:
    return f"{_label(path)}, line {line}" if line else _label(path)


def _read(path: Path) -> tuple[dict, dict]:
    """The YAML mapping of a profile file and the line of each key (``severity.CONS-06`` for a nested one); duplicate
    keys are an error (YAML would keep the last silently)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{_label(path)}: cannot read the profile ({exc})") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(f"{_where(path, mark.line + 1 if mark else None)}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        raise InputError(f"{_label(path)}: a profile is a YAML mapping with the keys {', '.join(KEYS)}"
                         + ("" if data is None else f", not a {type(data).__name__}"))
    lines: dict[str, int] = {}

    def walk(n: yaml.MappingNode, prefix: str) -> None:
        for k, v in n.value:
            key = prefix + str(k.value)
            if key in lines:
                raise InputError(f"{_where(path, k.start_mark.line + 1)}: key {key!r} given twice (also on line {lines[key]})")
            lines[key] = k.start_mark.line + 1
            if isinstance(v, yaml.MappingNode) and not prefix:
                walk(v, key + ".")
    walk(node, "")
    return data, lines


def _rule_ids() -> dict:
    from ccmlib.engine.rules import load_all
    return load_all()


def _parse(path: Path) -> tuple[dict, dict]:
    """One file's own declarations, validated (``extends`` not yet followed)."""
    data, lines = _read(path)
    rules = _rule_ids()
    at = lambda key: _where(path, lines.get(key))  # noqa: E731
    unknown = [k for k in data if k not in KEYS]
    if unknown:
        k = str(unknown[0])
        hint = " (YAML reads a bare yes/no/on/off as true/false: write the key as a text)" if isinstance(unknown[0], bool) else ""
        raise InputError(f"{at(k)}: unknown key {k!r}{hint} (a profile has {', '.join(KEYS)})")
    if not isinstance(data.get("name"), str) or not data["name"].strip():
        raise InputError(f"{at('name')}: key 'name' must be a non-empty text, not {data.get('name')!r}")
    for k in ("description", "extends"):
        if k in data and data[k] is not None and not isinstance(data[k], str):
            raise InputError(f"{at(k)}: key {k!r} must be a text, not {data[k]!r}")
    sev = data.get("severity") or {}
    if not isinstance(sev, dict):
        raise InputError(f"{at('severity')}: key 'severity' must map rule ids to error or warning (CONS-06: error), not {sev!r}")
    for rid, s in sev.items():
        where = at(f"severity.{rid}")
        if rid not in rules:
            raise InputError(f"{where}: severity: unknown rule id {rid!r} (known: {', '.join(sorted(rules))})")
        if rules[rid].fixed_severity:  # not a compliance judgement (REV-01: missed revenue, always info)
            raise InputError(f"{where}: severity: {rid} is a missed-revenue opportunity (info); its severity cannot be changed")
        if s not in SEVERITIES:
            raise InputError(f"{where}: severity of {rid}: {s!r} is not a severity (error or warning)")
    off = data.get("rules_off") or []
    if not isinstance(off, list):
        raise InputError(f"{at('rules_off')}: key 'rules_off' must be a list of rule ids ([TIME-10, DX-01]), not {off!r}")
    for rid in off:
        if rid not in rules:
            raise InputError(f"{at('rules_off')}: rules_off: unknown rule id {rid!r} (known: {', '.join(sorted(rules))})")
        if rid in sev:
            raise InputError(f"{at('rules_off')}: rules_off: {rid} is also given a severity in this file; choose one")
    pricing = data.get("pricing")
    if pricing is not None and pricing not in PRICING:
        raise InputError(f"{at('pricing')}: pricing: {pricing!r} is not a pricing source ({' or '.join(PRICING)})")
    return data, lines


def _locate(ref: str, base: Path | None, option: str) -> Path:
    """A built-in profile's file by name, else a file (relative to ``base``, the folder of the file that extends it)."""
    if ref in builtins():
        return builtin_dir() / f"{ref}.yml"
    p = Path(ref).expanduser()
    if base is not None and not p.is_absolute():
        p = base / p
    if p.is_file():
        return p
    raise InputError(f"{option} {ref!r}: no built-in profile of that name ({', '.join(builtins())}) and no such file")


def load_profile(profile: "str | Path | Profile | None" = None) -> Profile:
    """The profile named ``profile`` (a built-in name or a YAML file; None: ``medicare-ffs``), its ``extends`` chain
    resolved (the file's own keys win over what it extends) and every key validated."""
    if isinstance(profile, Profile):
        return profile
    path = _locate(str(profile) if profile not in (None, "") else DEFAULT, None, "--profile")
    chain: list[tuple[Path, dict]] = []
    seen: list[Path] = []
    while path is not None:
        real = path.resolve()
        if real in seen:
            cycle = " -> ".join(_label(p) for p in [*seen, real])
            raise InputError(f"{_label(chain[-1][0])}: extends: {chain[-1][1]['extends']!r} makes a cycle ({cycle})")
        seen.append(real)
        data, lines = _parse(path)
        if data["name"] in builtins() and real != (builtin_dir() / f"{data['name']}.yml").resolve():
            raise InputError(f"{_where(path, lines.get('name'))}: name {data['name']!r} is a built-in profile's; give this "
                             f"profile its own name (and `extends: {data['name']}` to start from it)")
        chain.append((path, data))
        ext = data.get("extends")
        path = _locate(ext, path.parent, f"{_where(path, lines.get('extends'))}: extends:") if ext else None
    severity: dict[str, str] = {}
    off: set[str] = set()
    pricing = "fee_schedule"
    for path, data in reversed(chain):  # the root first, this file last: the nearer file wins
        for rid, s in (data.get("severity") or {}).items():
            severity[rid] = s
            off.discard(rid)
        for rid in data.get("rules_off") or []:
            off.add(rid)
            severity.pop(rid, None)
        pricing = data.get("pricing") or pricing
    top = chain[0][1]
    return Profile(name=top["name"].strip(), description=" ".join(str(top.get("description") or "").split()),
                   severity=dict(sorted(severity.items())), off=tuple(sorted(off)), pricing=pricing,
                   files=tuple({"file": _label(p), "sha256": _sha256(p)} for p, _ in chain))


def rules_run(profile: Profile, ids: list[str]) -> tuple[list[str], list[dict]]:
    """The selected rule ids less those the profile switches off, and a run.json status row for each one it switched
    off."""
    return ([r for r in ids if r not in profile.off],
            [{"rule_id": r, "status": "off", "reason": f"switched off by profile {profile.name}"} for r in ids if r in profile.off])


def apply(raw: pd.DataFrame, profile: Profile, facts) -> pd.DataFrame:
    """The first phase's raw findings with the profile's severities, and for a time-entry finding raised to error the
    code family its minutes count toward (``reach``: ``staff`` for a clinical staff member's counted entry, ``all`` for
    a practitioner's, '' when the entry did not count), which :func:`~ccmlib.engine.money.expand_effects` reads."""
    if not len(raw) or not profile.severity:
        return raw
    out = raw.copy()
    sev = out["rule_id"].map(profile.severity)
    out["severity"] = sev.where(sev.notna(), out["severity"])
    ent = (out["scope"] == "entry") & (out["severity"] == "error")
    if ent.any():
        e = facts.entry_rows(columns=["patient_id", "entry_id", "qualifying", "is_practitioner"])
        reach = pd.Series(np.where(e["qualifying"].fillna(0).to_numpy() > 0,
                                   np.where(e["is_practitioner"].to_numpy(dtype=bool), "all", "staff"), ""),
                          index=pd.MultiIndex.from_arrays([e["patient_id"].astype(str), e["entry_id"].astype(str)]))
        reach = reach[~reach.index.duplicated()]
        keys = pd.MultiIndex.from_arrays([out.loc[ent, "patient_id"].astype(str), out.loc[ent, "entry_id"].astype(str)])
        out["reach"] = ""
        out.loc[ent, "reach"] = reach.reindex(keys).fillna("").to_numpy()
    return out


def catalog(profile=None) -> pd.DataFrame:
    """The rule catalog (:func:`ccmlib.engine.rules.registry.catalog`) with the severities ``profile`` uses (a
    :class:`Profile`, a name or file, or run.json's ``profile`` record; None: the catalog as written), its
    ``catalog_severity`` beside, and ``status`` ``off`` for the rules the profile switches off."""
    from ccmlib.engine.rules.registry import catalog as base

    cat = base()
    if isinstance(profile, dict):
        severity, off = profile.get("severity") or {}, set(profile.get("rules_off") or [])
    elif profile is None:
        severity, off = {}, set()
    else:
        p = load_profile(profile)
        severity, off = p.severity, set(p.off)
    out = cat.assign(catalog_severity=cat["severity"])
    out["severity"] = out["id"].map(severity).fillna(out["severity"])
    out["profile_status"] = np.where(out["id"].isin(off), "off", "on")
    return out


def sentence(run_profile: dict | None) -> str:
    """One plain sentence naming the profile a run used and what it changes (reports and worklists print it)."""
    p = run_profile or {"name": DEFAULT, "severity": {}, "rules_off": [], "pricing": "fee_schedule"}
    parts = []
    raised = [r for r, s in sorted((p.get("severity") or {}).items()) if s == "error"]
    lowered = [r for r, s in sorted((p.get("severity") or {}).items()) if s != "error"]
    if raised:
        parts.append(f"{', '.join(raised)} as errors that take units")
    if lowered:
        parts.append(f"{', '.join(lowered)} as warnings")
    if p.get("rules_off"):
        parts.append(f"{', '.join(p['rules_off'])} not run")
    if p.get("pricing") == "paid_only":
        parts.append("the paid amount as the only price (a line without one is unpriced; cost sharing only from the "
                     "allowed amount)")
    what = "; ".join(parts) if parts else "the rule catalog as written"
    return f"Profile {p['name']}: {what}."


def option(profile) -> str | None:
    """``--profile``'s value checked now (a bad file stops the run before any work, exit 2) and made independent of the
    working folder (a built-in name as given, a file as its full path) for a notebook or worker process."""
    if profile in (None, ""):
        return None
    load_profile(profile)
    text = str(profile)
    return text if text in builtins() else str(Path(text).expanduser().resolve())


def from_run(run_profile: dict | None) -> str | None:
    """The ``--profile`` value that re-runs an audit under the profile its run.json recorded (the chart review re-runs
    it): a built-in's name, or the user's file, which must still be the file the run read (same SHA-256)."""
    if not run_profile or run_profile.get("name") == DEFAULT and not run_profile.get("severity") and not run_profile.get("rules_off"):
        return None
    file = str(run_profile.get("file") or "")
    if file.startswith("(built in) "):
        return run_profile["name"]
    path = Path(file)
    if not path.is_file():
        raise InputError(f"{file}: the profile this audit was run under ({run_profile.get('name')}) is not there any more")
    if _sha256(path) != run_profile.get("sha256"):
        raise InputError(f"{file}: the profile file changed since this audit was run (its SHA-256 differs from run.json's); "
                         f"run the audit again under it, or restore the file")
    return str(path)
