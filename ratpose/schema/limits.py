"""Column limits read from the table definitions: rows are checked before any insert."""
from __future__ import annotations

import re

import numpy as np

from ..errors import ConfigurationError

_INT_BITS = {"tinyint": 8, "smallint": 16, "mediumint": 24, "int": 32, "bigint": 64}
_SIZED = re.compile(r"(var)?char\((\d+)\)")


def _limit(sql_type: str):
    """('str', max length) or ('int', lo, hi) for a column's SQL type; None when unchecked."""
    sql_type = sql_type.lower()
    sized = _SIZED.fullmatch(sql_type.split()[0])
    if sized:
        return "str", int(sized.group(2))
    base = sql_type.split()[0].split("(")[0]
    if base in _INT_BITS:
        bits = _INT_BITS[base]
        if "unsigned" in sql_type:
            return "int", 0, 2**bits - 1
        return "int", -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return None


def check_rows(table, rows, where: str) -> None:
    """Raise ValueError naming ``where`` and the field when a value exceeds its column's width or range."""
    limits = {a.name: _limit(a.sql_type) for a in table.heading.attributes.values()}
    for row in rows:
        for name, value in row.items():
            limit = limits.get(name)
            if limit is None or value is None:
                continue
            if limit[0] == "str" and len(str(value)) > limit[1]:
                raise ConfigurationError(f"{where}: {name!r} is {len(str(value))} characters long; "
                                 f"at most {limit[1]} fit ({str(value)[:40]!r}...)")
            if limit[0] == "int" and isinstance(value, (int, np.integer)) and not limit[1] <= value <= limit[2]:
                raise ConfigurationError(f"{where}: {name!r} = {value} is outside {limit[1]}..{limit[2]}")
