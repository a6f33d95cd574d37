"""CSV import and export.

An import is all-or-nothing: every row is validated, every bad row is reported with its line
number and reason, and nothing is written unless all rows are good.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import msgspec

from omnicloud.core.errors import Unprocessable

T = TypeVar("T")

MAX_ROWS = 50_000


class RowError(msgspec.Struct):
    line: int
    field: str
    message: str


def _clean(row: dict[str, str | None]) -> dict[str, Any]:
    return {
        k.strip(): (v.strip() if isinstance(v, str) else v)
        for k, v in row.items()
        if k and v not in (None, "")
    }


def parse_rows(text: str, schema: type[T], *, required_columns: Sequence[str]) -> list[tuple[int, T]]:
    """Decode CSV text into ``(line, row)`` pairs, or raise a 422 listing every bad row."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in required_columns if c not in header]
    if missing:
        raise Unprocessable(
            f"missing columns: {', '.join(missing)}",
            code="csv_columns",
            errors=[{"line": 1, "field": c, "message": "missing column"} for c in missing],
        )
    known = {f.encode_name for f in msgspec.structs.fields(schema)}
    unknown = [h for h in header if h not in known]
    if unknown:
        raise Unprocessable(
            f"unknown columns: {', '.join(unknown)}",
            code="csv_columns",
            errors=[{"line": 1, "field": c, "message": "unknown column"} for c in unknown],
        )
    rows: list[tuple[int, T]] = []
    errors: list[RowError] = []
    for index, raw in enumerate(reader):
        line = index + 2  # the header is line 1
        if index >= MAX_ROWS:
            raise Unprocessable(f"at most {MAX_ROWS} rows per import", code="csv_too_large")
        if None in raw:
            errors.append(RowError(line, "", "more values than columns"))
            continue
        try:
            rows.append((line, msgspec.convert(_clean(raw), schema, strict=False)))
        except msgspec.ValidationError as exc:
            message = str(exc)
            field = message.rsplit("`$.", 1)[-1].rstrip("`") if "`$." in message else ""
            errors.append(RowError(line, field, message.split(" - at ")[0]))
    raise_if_errors(errors)
    return rows


def raise_if_errors(errors: list[RowError]) -> None:
    if errors:
        errors.sort(key=lambda e: e.line)
        raise Unprocessable(
            f"{len(errors)} bad row(s); nothing was imported",
            code="csv_invalid",
            errors=[msgspec.to_builtins(e) for e in errors],
        )


def to_csv(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    return out.getvalue()
