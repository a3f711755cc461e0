"""Learner-controlled strings, made safe for where the grader puts them.

A learner chooses their folder name, their notebook's lab metadata, what their
code prints into a failure message and (on an LMS) their display name. Each of
those ends up somewhere that interprets text: the instructor's terminal (escape
sequences can move the cursor, rewrite earlier lines or set the window title),
a spreadsheet opening a CSV (a cell starting with ``=`` is a formula), a file
system path (``../``), an HTML page. One function per destination, so every
writer says which one it needs.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Hashable, Iterable

__all__ = ["clean", "terminal", "csv_cell", "csv_text", "learner_name", "unique_names"]

# Cc: C0/C1 controls (ESC, BEL, CR...); Cf: format characters (bidi overrides,
# zero-width joiners) that make a name look like another; Zl/Zp: line breaks.
_INVISIBLE = {"Cc", "Cf", "Zl", "Zp", "Co", "Cs"}
# A whole escape sequence goes, not only its ESC byte: "\x1b[2J" must not leave "[2J".
_ESCAPE_SEQUENCE = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|[@-Z\\-_])|\x9b[0-?]*[ -/]*[@-~]")
_CSV_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
MAX_NAME = 100


def clean(text: object, keep_newlines: bool = False) -> str:
    """``text`` without escape sequences and invisible characters (newlines kept only if asked)."""
    text = _ESCAPE_SEQUENCE.sub("", unicodedata.normalize("NFC", str(text)))
    out = []
    for char in text:
        if char in "\n\t" and keep_newlines:
            out.append(char)
        elif unicodedata.category(char) in _INVISIBLE:
            out.append(" " if char in "\n\r\t" else "")
        else:
            out.append(char)
    return "".join(out)


def terminal(text: object) -> str:
    """One line fit for the instructor's terminal: no escapes, no controls, no line breaks."""
    return " ".join(clean(text).split())


def csv_cell(value: object) -> object:
    """A value a spreadsheet will show, never run: text that could start a formula gets a leading ``'``.

    Numbers the grader computed stay numbers (a penalty of -2 is not a formula);
    text that starts with ``= + - @``, a tab or a carriage return is prefixed,
    as OWASP's CSV-injection advice says.
    """
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, (int, float)):
        return f"{value:g}" if isinstance(value, float) else value
    text = str(value)
    return "'" + text if text.startswith(_CSV_TRIGGERS) else text


def csv_text(header: list[str], rows: Iterable[Iterable[object]]) -> str:
    """A CSV document whose every cell went through ``csv_cell``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([csv_cell(h) for h in header])
    writer.writerows([csv_cell(c) for c in row] for row in rows)
    return buffer.getvalue()


def learner_name(raw: object) -> str:
    """A learner's name as the reports show it and as a folder name: readable, one path component."""
    text = " ".join(clean(raw).replace("/", "_").replace("\\", "_").split())
    text = text.lstrip(".").strip()[:MAX_NAME].strip()
    return text or "unknown"


def unique_names(wanted: Iterable[tuple[Hashable, str]]) -> dict[Hashable, str]:
    """One distinct name per key, deterministically: the first key (in sorted order) keeps its name.

    Names are compared case-insensitively, because ``feedback/Bob`` and
    ``feedback/bob`` are the same folder on macOS and Windows. Later keys get
    ``name~2``, ``name~3``, ...
    """
    taken: set[str] = set()
    names: dict[Hashable, str] = {}
    for key, name in sorted(wanted, key=lambda pair: (pair[1].casefold(), repr(pair[0]))):
        candidate, n = name, 1
        while candidate.casefold() in taken:
            n += 1
            candidate = f"{name}~{n}"
        taken.add(candidate.casefold())
        names[key] = candidate
    return names
