"""Read X12 837P claims (005010X222A1) and 835 remittance advice (005010X221A1) with pyx12.

pyx12 validates each file against its implementation-guide map first: an error in the envelope (ISA/IEA, GS/GE,
ST/SE: a missing trailer, a wrong segment terminator, counts that do not match) makes the file unusable and raises
:class:`~ccmlib.errors.InputError` naming the file, segment and message; an error inside a claim (a bad element, a
missing required segment) rejects that claim's records with the validator's message. The walk over the segments is
pyx12's ``X12ContextReader``, which knows the loops; this module only picks the elements.

Every *record* read (an 837P service line, a diagnosis code, a subscriber or patient; an 835 service payment) is
returned, mapped or not, so that the ingest can reconcile: records read = mapped + rejected. Positions are segment
numbers in the file (ISA = 1), as pyx12 counts them.
"""
from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from ccmlib.errors import InputError

IG_837P = "005010X222A1"
IG_835 = "005010X221A1"
ICD10 = {"ABK", "ABF", "ABJ", "ABN", "APR"}  # principal, other, admitting, external cause, patient's reason (ICD-10-CM)
ICD9 = {"BK", "BF", "BJ", "BN", "PR"}
CLAIM_STATUS = {"1": "processed as primary", "2": "processed as secondary", "3": "processed as tertiary", "4": "denied",
                "19": "processed as primary, forwarded", "20": "processed as secondary, forwarded",
                "21": "processed as tertiary, forwarded", "22": "reversal of previous payment", "23": "not our claim, forwarded",
                "25": "predetermination pricing only"}


def sniff(path: Path) -> bool:
    """True when the file starts like an X12 interchange (ISA, after any BOM or white space)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(512).lstrip(b"\xef\xbb\xbf \t\r\n")
    except OSError:
        return False
    return head[:3] == b"ISA"


@dataclass
class X12Records:
    """What one X12 file gave: one dict per record (see module docstring)."""

    path: Path
    kinds: set = field(default_factory=set)          # "837P", "835"
    lines: list = field(default_factory=list)        # 837P service lines
    remits: list = field(default_factory=list)       # 835 service payments
    diagnoses: list = field(default_factory=list)    # HI codes of 837P claims
    patients: list = field(default_factory=list)     # subscribers / patients named in either
    rejected: list = field(default_factory=list)     # records of an unsupported transaction or an invalid claim
    read: int = 0                                    # records counted straight from the segments (for reconciliation)
    paid_read: float = 0.0                           # sum of SVC03 over the file's 835 service payments
    notes: list = field(default_factory=list)        # what was done to read the file (BOM skipped, A2 read with A1)


A2_NOTE = (f"declares 005010X222A2 (the 837P errata); read with pyx12's {IG_837P} map, which has no A2 version: the "
           f"errata's own changes were not validated")


def _prepare(path: Path) -> tuple[str, list[str]]:
    """The interchange's text as pyx12 reads it, and what was done to get there: a UTF-8 byte-order mark and leading
    white space skipped; an 837P declaring 005010X222A2 (errata) read with the A1 map (GS08 and ST03 only)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from None
    notes = []
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
        notes.append("UTF-8 byte-order mark skipped")
    text = data.decode("utf-8", errors="replace")
    if text[:1].isspace():
        text = text.lstrip()
        notes.append("white space before ISA skipped")
    if text.startswith("ISA") and len(text) > 106:
        ele, term = text[3], text[105]
        if term in "\r\n" and "\r\n" in text:  # a line break as terminator, written as CR LF
            text = text.replace("\r\n", term)
        segs = text.split(term)
        tidy = [seg.strip(" \t\r\n") if term not in " \t\r\n" else seg.strip(" \t") for seg in segs]
        if tidy != segs:
            notes.append("line breaks and indentation between segments skipped")
            segs = tidy
        while len(segs) > 1 and segs[-1] == "":
            segs.pop()
        text = term.join(segs) + term  # the last segment's terminator, when a file leaves it out
    if "005010X222A2" in text and text.startswith("ISA") and len(text) > 106:
        ele, term = text[3], text[105]
        segs = text.split(term)
        for i, seg in enumerate(segs):
            head = seg.lstrip("\r\n")
            if head.startswith(("GS" + ele, "ST" + ele)) and "005010X222A2" in head:
                segs[i] = seg.replace("005010X222A2", IG_837P)
        text = term.join(segs)
        notes.append(A2_NOTE)
    return text, notes


def service_segments(text: str) -> list[tuple[int, str, float]]:
    """(segment number, SV1 or SVC, SVC03 paid) of every service-line segment, read with the ISA's own separators and
    nothing else (an independent count the ingest reconciles the reader's records against; ISA = segment 1)."""
    if not text.startswith("ISA") or len(text) < 106:
        return []
    ele, term = text[3], text[105]
    out = []
    for i, seg in enumerate(text.split(term), 1):
        parts = seg.strip("\r\n \t").split(ele)
        if parts[0] in ("SV1", "SVC"):
            paid = _num(parts[3], 0.0) if parts[0] == "SVC" and len(parts) > 3 else 0.0
            out.append((i, parts[0], paid))
    return out


def _validate(path: Path, text: str | None = None) -> dict[int, list[str]]:
    """Run pyx12's validator; raise for envelope errors, return {segment number: [messages]} for the rest."""
    import pyx12.params
    import pyx12.x12n_document

    log = logging.getLogger("pyx12")
    log.propagate = False  # the validator logs every error; we report them ourselves
    if not log.handlers:
        log.addHandler(logging.NullHandler())
    out = io.StringIO()
    try:
        pyx12.x12n_document.x12n_document(pyx12.params.params(), io.StringIO(text) if text is not None else str(path), None, None,
                                          None, out)
    except Exception as exc:  # pyx12 raises its own X12Error/EngineError subclasses for unreadable envelopes
        raise InputError(f"{path}: not a readable X12 interchange ({exc})") from None
    text = out.getvalue()
    if not text:
        raise InputError(f"{path}: not a readable X12 interchange (no ISA segment of 106 characters at the start)")
    doc = json.loads(text)
    envelope, inner = [], {}

    def walk(node, where, line):
        if isinstance(node, list):
            for n in node:
                walk(n, where, line)
            return
        if not isinstance(node, dict):
            return
        if "seg_id" in node:
            where, line = node["seg_id"], node.get("cur_line")
        elif "isa_trn_set_id" in node:
            where, line = "ISA/IEA", node.get("cur_line")
        elif "gs_control_num" in node:
            where, line = "GS/GE", node.get("cur_line")
        elif "trn_set_id" in node:
            where, line = "ST/SE", node.get("cur_line")
        for err in node.get("errors") or []:
            msg = " ".join(str(err.get("err_str", "")).split())
            if where in ("ISA/IEA", "GS/GE", "ST/SE"):
                envelope.append(f"segment {line} ({where}): {msg}")
            else:
                ele = f" {node.get('name')}" if "ele_pos" in node else ""
                inner.setdefault(int(line or 0), []).append(f"{where}{ele}: {msg}")
        for key, val in node.items():
            if key != "errors":
                walk(val, where, line)

    walk(doc, None, None)
    counts = [e for e in envelope if "count of" in e and "is wrong" in e]
    if counts and len(counts) == len(envelope):  # SE/GE/IEA counts only: every segment is readable; say so, read on
        inner.setdefault(0, []).extend(counts)
        envelope = []
    if envelope:
        term = text[105] if text is not None and len(text) > 105 else _declared_terminator(path)
        raise InputError(f"{path}: malformed X12 interchange: " + "; ".join(envelope[:3])
                         + (f" (and {len(envelope) - 3} more)" if len(envelope) > 3 else "")
                         + (f" - the ISA segment declares {term!r} as segment terminator; every segment must end with it, "
                            f"and the file must end with GE and IEA trailers" if term else ""))
    return inner


def _declared_terminator(path: Path) -> str | None:
    """The segment terminator an ISA declares: the character after its 106th (ISA is fixed length)."""
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as fh:
            head = fh.read(200).lstrip()
    except OSError:
        return None
    return head[105] if len(head) > 105 and head.startswith("ISA") else None


def _num(text, default=None):
    if text in (None, ""):
        return default
    try:
        return float(text)
    except ValueError:
        return default


def _date(text: str | None) -> str | None:
    text = (text or "").strip()
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) >= 8 and text[:8].isdigit() else None


def _npi(seg) -> str | None:
    return seg.get_value("NM109") if seg.get_value("NM108") == "XX" else None


def _code(seg, comp: str):
    """(qualifier, code, modifiers) of a composite procedure identifier such as SV101 or SVC01."""
    qual, code = seg.get_value(f"{comp}-1"), seg.get_value(f"{comp}-2")
    mods = [m for m in (seg.get_value(f"{comp}-{i}") for i in range(3, 7)) if m]
    return qual, code, " ".join(mods)


def read_x12(path: str | Path) -> X12Records:
    """Read one X12 file (any number of interchanges/groups of 837P and 835)."""
    import pyx12.error_handler
    import pyx12.params
    import pyx12.x12context

    path = Path(path)
    text, notes = _prepare(path)
    errors = _validate(path, text)
    rec = X12Records(path)
    rec.notes = notes + [f"envelope counts do not match the segments (read on): {m}" for m in errors.pop(0, [])]
    kind = None
    st = {}       # state of the current transaction set
    claim = None  # current 837P claim or 835 claim payment
    item = None   # current 837P service line or 835 service payment

    def close_claim():
        """A claim with an error in any of its segments is rejected whole, with the validator's message."""
        nonlocal claim
        if claim is None:
            return
        bad = [m for ln in claim["_segs"] for m in errors.get(ln, [])] + claim.get("_errors", [])
        records = claim["_records"]
        if bad:
            for r in records:
                rec.rejected.append({**{k: v for k, v in r.items() if k != "_kind"},
                                     "problem": "claim rejected by X12 validation: " + "; ".join(bad[:3])})
        else:
            for r in records:
                {"line": rec.lines, "remit": rec.remits, "dx": rec.diagnoses}[r.pop("_kind")].append(r)
        claim = None

    seen = set()      # service-line segments the walk reached
    stopped = None    # why the walk stopped early (pyx12 raised inside the file)
    reader = pyx12.x12context.X12ContextReader(pyx12.params.params(), pyx12.error_handler.errh_null(), io.StringIO(text))
    segments = reader.iter_segments()
    n = 0
    while True:
        try:
            node = next(segments)
        except StopIteration:
            break
        except Exception as exc:  # pyx12 cannot walk on: what follows is listed below, never lost
            stopped = f"the X12 reader stopped after segment {n} ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
            if claim is not None:
                claim.setdefault("_errors", []).append(stopped)
            break
        try:
            seg, n = node.seg_data, node.cur_line_number
            sid = seg.get_seg_id()  # the segment as written (pyx12's map node can lag behind on a segment it does not know)
            loop = node.x12_map_node.parent.id if node.x12_map_node is not None and node.x12_map_node.parent is not None else ""
            if sid == "GS":
                close_claim()
                ver = seg.get_value("GS08")
                kind = "837P" if ver == IG_837P else "835" if ver == IG_835 else None
                if kind is None:
                    rec.read += 1
                    rec.rejected.append({"_kind": "group", "segment": n, "record": f"GS {seg.get_value('GS06')}",
                                         "table": "", "paid": 0.0,
                                         "problem": f"functional group of {seg.get_value('GS01')} {ver} is not read (ccm-audit "
                                                    f"reads 837P {IG_837P} and 835 {IG_835})"})
                else:
                    rec.kinds.add(kind)
                continue
            if kind is None:
                continue
            if sid in ("SV1", "SVC") or (sid == "NM1" and loop in ("2010BA", "2010CA")) or \
                    (sid == "NM1" and loop == "2100" and seg.get_value("NM101") == "QC"):
                rec.read += 1
                if sid in ("SV1", "SVC"):
                    seen.add(n)
                if sid == "SVC":
                    rec.paid_read += _num(seg.get_value("SVC03"), 0.0)
            elif sid == "HI":
                rec.read += sum(1 for i in range(1, 13) if seg.get_value(f"HI{i:02d}-2"))
            if sid == "ST":
                close_claim()
                st = {"billing_npi": None, "payee_npi": None, "sub": None}
            elif sid == "SE":
                close_claim()
            elif kind == "837P":
                claim, item = _seg_837(rec, st, claim, item, seg, sid, loop, n, close_claim)
            else:
                claim, item = _seg_835(rec, st, claim, item, seg, sid, loop, n, close_claim)
            if claim is not None and claim["_segs"][-1] != n:
                claim["_segs"].append(n)
        except Exception as exc:  # one segment the mapping could not take: its claim is rejected with the reason, the file goes on
            why = f"segment {n} could not be read ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
            if claim is not None:
                claim.setdefault("_errors", []).append(why)
            else:
                rec.rejected.append({"segment": n, "record": f"segment {n}", "table": "", "paid": 0.0, "problem": why})
    close_claim()
    _account(rec, text, seen, stopped)
    return rec


def _account(rec: X12Records, text: str, seen: set, stopped: str | None) -> None:
    """Every SV1/SVC segment of the file (counted with the ISA's separators alone) is a mapped or rejected record:
    one the walk never reached, or reached outside a claim it knows, is listed as rejected with its paid amount."""
    have = {r.get(k) for r in (*rec.lines, *rec.remits, *rec.rejected) for k in ("segment", "sv1_segment")}
    for n, sid, paid in service_segments(text):
        if n in have:
            continue
        if n not in seen:  # never counted by the walk: count it now (records read = mapped + rejected)
            rec.read += 1
            rec.paid_read += paid
        why = stopped or f"{sid} segment outside a claim the reader could place (not under an 837P claim's LX or an 835 CLP)"
        rec.rejected.append({"segment": n, "record": f"{sid} at segment {n}", "table": "claims", "paid": paid,
                             "problem": f"service line not mapped: {why}"})


def _person(rec, seg, n, role):
    p = {"_kind": "patient", "segment": n, "member_id": seg.get_value("NM109") or None,
         "last_name": seg.get_value("NM103") or None, "first_name": seg.get_value("NM104") or None,
         "birth_date": None, "mrn": None, "role": role}
    rec.patients.append(p)
    return p


def _seg_837(rec, st, claim, item, seg, sid, loop, n, close_claim):
    if sid == "NM1" and loop == "2010AA":
        st["billing_npi"] = _npi(seg)
    elif sid == "HL":
        close_claim()
        claim = None
        if seg.get_value("HL03") == "22":
            st["sub"] = None
            st["pat"] = None
    elif sid == "NM1" and loop == "2010BA":
        st["sub"] = _person(rec, seg, n, "subscriber")
    elif sid == "NM1" and loop == "2010CA":
        st["pat"] = _person(rec, seg, n, "patient")
    elif sid == "DMG" and loop in ("2010BA", "2010CA"):
        who = st.get("pat") if loop == "2010CA" else st.get("sub")
        if who is not None:
            who["birth_date"] = _date(seg.get_value("DMG02"))
    elif sid == "CLM":
        close_claim()
        sub = st.get("sub") or {}
        claim = {"_segs": [n], "_records": [], "claim_id": seg.get_value("CLM01"), "pos": seg.get_value("CLM05-1"),
                 "frequency": seg.get_value("CLM05-3") or "1", "mrn": None, "original_ref": None,
                 "member_id": sub.get("member_id"), "person": st.get("pat") or st.get("sub"),
                 "billing_npi": st.get("billing_npi"), "rendering_npi": None, "segment": n}
        item = None
    elif claim is None:
        pass
    elif sid == "REF" and loop == "2300":
        if seg.get_value("REF01") == "EA":
            claim["mrn"] = seg.get_value("REF02")
            if claim["person"] is not None:
                claim["person"]["mrn"] = claim["mrn"]
        elif seg.get_value("REF01") == "F8":
            claim["original_ref"] = seg.get_value("REF02")
    elif sid == "HI" and loop == "2300":
        for i in range(1, 13):
            qual, code = seg.get_value(f"HI{i:02d}-1"), seg.get_value(f"HI{i:02d}-2")
            if not code:
                continue
            r = {"_kind": "dx", "segment": n, "record": f"{claim['claim_id']} HI{i:02d}", "table": "diagnoses",
                 "claim_id": claim["claim_id"], "claim": claim, "code": code, "qualifier": qual, "paid": 0.0}
            if qual in ICD10:
                claim["_records"].append(r)
                claim.setdefault("dx_codes", []).append(code)
            else:
                what = "an ICD-9-CM code" if qual in ICD9 else f"not an ICD-10-CM diagnosis (qualifier {qual})"
                r.pop("_kind")
                rec.rejected.append({**r, "problem": f"diagnosis {code} is {what}; only ICD-10-CM codes are diagnoses"})
    elif sid == "NM1" and loop == "2310B":
        claim["rendering_npi"] = _npi(seg)
    elif sid == "LX":
        item = {"_kind": "line", "segment": n, "table": "claims", "claim": claim, "line": seg.get_value("LX01"),
                "line_ctrl": None, "rendering_npi": None, "service_date": None, "service_date_end": None, "paid": 0.0}
        item["record"] = f"{claim['claim_id']} line {item['line']}"
        claim["_records"].append(item)
    elif item is None:
        pass
    elif sid == "SV1":
        qual, code, mods = _code(seg, "SV101")
        item.update(sv1_segment=n, qualifier=qual, cpt_code=code, modifiers=mods, charge_amount=_num(seg.get_value("SV102")),
                    units=_num(seg.get_value("SV104"), 1.0), place_of_service=seg.get_value("SV105") or claim["pos"])
    elif sid == "DTP" and seg.get_value("DTP01") == "472":
        val = seg.get_value("DTP03") or ""
        start, _, end = val.partition("-")
        item["service_date"], item["service_date_end"] = _date(start), _date(end) if end else None
    elif sid == "REF" and loop == "2400" and seg.get_value("REF01") == "6R":
        item["line_ctrl"] = seg.get_value("REF02")
    elif sid == "NM1" and loop == "2420A":
        item["rendering_npi"] = _npi(seg)
    return claim, item


def _seg_835(rec, st, claim, item, seg, sid, loop, n, close_claim):
    if sid == "N1" and loop == "1000B":
        st["payee_npi"] = seg.get_value("N104") if seg.get_value("N103") == "XX" else None
    elif sid == "LX":
        close_claim()
        claim = None
    elif sid == "CLP":
        close_claim()
        claim = {"_segs": [n], "_records": [], "claim_id": seg.get_value("CLP01"), "status": seg.get_value("CLP02"),
                 "icn": seg.get_value("CLP07"), "pos": seg.get_value("CLP08"), "mrn": None, "member_id": None,
                 "person": None, "payee_npi": st.get("payee_npi"), "rendering_npi": None, "claim_date": None,
                 "claim_paid": _num(seg.get_value("CLP04"), 0.0), "segment": n}
        item = None
    elif claim is None:
        pass
    elif sid == "NM1" and loop == "2100" and seg.get_value("NM101") == "QC":
        claim["person"] = _person(rec, seg, n, "patient")
        claim["member_id"] = claim["person"]["member_id"]
    elif sid == "NM1" and loop == "2100" and seg.get_value("NM101") == "82":
        claim["rendering_npi"] = _npi(seg)
    elif sid == "REF" and loop == "2100" and seg.get_value("REF01") == "EA":
        claim["mrn"] = seg.get_value("REF02")
        if claim["person"] is not None:
            claim["person"]["mrn"] = claim["mrn"]
    elif sid == "DTM" and loop == "2100" and seg.get_value("DTM01") in ("232", "050"):
        claim["claim_date"] = claim["claim_date"] or _date(seg.get_value("DTM02"))
    elif sid == "SVC":
        qual, code, mods = _code(seg, "SVC01")
        units = _num(seg.get_value("SVC05"), 1.0)
        item = {"_kind": "remit", "segment": n, "table": "claims", "claim": claim, "qualifier": qual, "cpt_code": code,
                "modifiers": mods, "charge_amount": _num(seg.get_value("SVC02"), 0.0), "paid": _num(seg.get_value("SVC03"), 0.0),
                "units_paid": units, "units_billed": _num(seg.get_value("SVC07")), "line_ctrl": None, "service_date": None,
                "adjustments": []}
        if seg.get_value("SVC06-2"):  # the adjudicated code differs from the billed one, which SVC06 carries
            item["billed_code"] = seg.get_value("SVC06-2")
        item["record"] = f"{claim['claim_id']} {code} (CLP02 {claim['status']}, segment {n})"
        claim["_records"].append(item)
    elif item is None:
        if sid == "CAS" and loop == "2100":
            claim.setdefault("claim_cas", []).extend(_cas(seg))
    elif sid == "DTM" and seg.get_value("DTM01") in ("472", "150"):
        item["service_date"] = item["service_date"] or _date(seg.get_value("DTM02"))
    elif sid == "CAS":
        item["adjustments"].extend(_cas(seg))
    elif sid == "AMT" and seg.get_value("AMT01") == "B6":  # the allowed amount of the service line
        item["allowed"] = _num(seg.get_value("AMT02"))
    elif sid == "REF" and seg.get_value("REF01") == "6R":
        item["line_ctrl"] = seg.get_value("REF02")
    return claim, item


def _cas(seg) -> list[tuple[str, str, float]]:
    """(group, reason, amount) triplets of a CAS segment (up to six reasons per group)."""
    grp, out = seg.get_value("CAS01"), []
    for i in range(6):
        reason = seg.get_value(f"CAS{2 + 3 * i:02d}")
        if reason:
            out.append((grp, reason, _num(seg.get_value(f"CAS{3 + 3 * i:02d}"), 0.0)))
    return out


def unreadable(path: Path, why: str) -> X12Records:
    """The records of a file the reader could not walk at all: every service line it holds (counted with the ISA's
    separators), rejected with the reason, so that nothing it holds is lost."""
    rec = X12Records(Path(path))
    try:
        text, rec.notes = _prepare(Path(path))
    except InputError:
        text = ""
    _account(rec, text, set(), f"the file could not be read ({why})")
    return rec
