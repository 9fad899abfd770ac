"""Hot-path statements: written once in SQLAlchemy Core, compiled once per dialect.

`Connection.execute` recomputes a statement's cache key and builds its parameters on every call,
which costs more than the SQL itself for the small writes a run makes at every step. A
`Prepared` statement keeps the Core definition (so SQLite and PostgreSQL still share one text
source) but runs its compiled string through `exec_driver_sql`, keeping SQLAlchemy's transaction
tracking and error wrapping.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection, CursorResult, Dialect
from sqlalchemy.sql.expression import Executable

__all__ = ["Prepared"]


@dataclass(frozen=True)
class _Compiled:
    text: str
    names: tuple[str, ...] | None  # positional order; None for named paramstyles
    processors: Mapping[str, Callable[[Any], Any]]


class Prepared:
    """A Core statement with bind parameters, compiled on first use for each dialect."""

    def __init__(self, statement: Executable) -> None:
        self._statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def _compile(self, dialect: Dialect) -> _Compiled:
        key = f"{dialect.name}+{dialect.driver}"
        compiled = self._compiled.get(key)
        if compiled is None:
            c = self._statement.compile(dialect=dialect)  # type: ignore[attr-defined]
            positions = c.positiontup
            # Type-level conversions SQLAlchemy would apply to each value (e.g. float() for
            # SQLite's Float); the driver gets exactly what `execute` would have given it.
            processors = dict(getattr(c, "_bind_processors", None) or {})
            compiled = _Compiled(
                str(c), tuple(positions) if positions is not None else None, processors
            )
            self._compiled[key] = compiled
        return compiled

    def _driver_params(self, compiled: _Compiled, params: Mapping[str, Any]) -> Any:
        if compiled.processors:
            params = {
                k: (compiled.processors[k](v) if k in compiled.processors else v)
                for k, v in params.items()
            }
        if compiled.names is None:
            return dict(params)
        return tuple(params[name] for name in compiled.names)

    def execute(self, conn: Connection, params: Mapping[str, Any]) -> CursorResult[Any]:
        compiled = self._compile(conn.dialect)
        return conn.exec_driver_sql(compiled.text, self._driver_params(compiled, params))

    def executemany(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> CursorResult[Any]:
        compiled = self._compile(conn.dialect)
        return conn.exec_driver_sql(
            compiled.text, [self._driver_params(compiled, row) for row in rows]
        )
