"""`filesystem.csv_writer`: Arrow batches to a CSV file with every dialect option honoured."""

from __future__ import annotations

import csv
import datetime as dt
import os
import tempfile
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, TextIO

from osiris_core.arrow_values import python_safe
from osiris_core.driver import Driver, StepContext, StepInputs, StepOutputs, single_input
from osiris_core.errors import DriverError
from osiris_drivers.filesystem.connection import FileSettings
from osiris_drivers.filesystem.dialect import Encoding, OneChar
from osiris_drivers.step_io import batches, report_written

_QUOTING: dict[str, Literal[0, 1, 2, 3]] = {
    "all": csv.QUOTE_ALL,
    "nonnumeric": csv.QUOTE_NONNUMERIC,
    "none": csv.QUOTE_NONE,
}


class CsvWriterConfig(FileSettings):
    delimiter: OneChar = ","
    header: bool = True
    encoding: Encoding = "utf-8"
    newline: Literal["\n", "\r\n", "\r"] = "\n"
    quotechar: OneChar = '"'
    quoting: Literal["minimal", "all", "nonnumeric", "none"] = "minimal"
    null_value: str = ""


def _cell(value: Any, null_value: str) -> Any:
    """Python value → what csv writes; numbers stay numbers so `nonnumeric` quoting can tell them apart."""
    if value is None:
        return null_value
    if value == "":
        return _Empty()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return value
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


class _Empty(str):
    """An empty string value (not NULL): the minimal writer quotes it so it reads back as "" and not as NULL."""


class _MinimalWriter:
    """csv.QUOTE_MINIMAL, except that an empty string value is written quoted (`""`) and NULL (`null_value`)
    never is: the extractor reads an unquoted empty field as NULL and a quoted one as the empty string."""

    def __init__(self, handle: TextIO, *, delimiter: str, quotechar: str, lineterminator: str) -> None:
        self._handle = handle
        self._delimiter = delimiter
        self._quote = quotechar
        self._special = frozenset(f"{delimiter}{quotechar}\r\n")
        self._terminator = lineterminator

    def _field(self, value: Any, single: bool) -> str:
        text = str(value)
        if isinstance(value, _Empty) or (single and text == "") or not self._special.isdisjoint(text):
            return self._quote + text.replace(self._quote, self._quote * 2) + self._quote
        return text

    def writerow(self, row: Sequence[Any]) -> None:
        single = len(row) == 1  # a lone empty field is quoted, or the row would be a blank line
        self._handle.write(self._delimiter.join(self._field(v, single) for v in row) + self._terminator)

    def writerows(self, rows: Iterable[Sequence[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def _file_mode(target: Path) -> int:
    """The mode a plainly created file would get: the existing target's, else 0666 less the umask."""
    if target.exists():
        return target.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


class CsvWriter(Driver[CsvWriterConfig]):
    config_model = CsvWriterConfig

    def run(self, *, step_id: str, config: CsvWriterConfig, inputs: StepInputs, ctx: StepContext) -> StepOutputs:
        data = single_input(step_id, inputs)
        target = Path(config.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        rows = 0
        try:
            with os.fdopen(fd, "w", encoding=config.encoding, newline="") as handle:
                writer: Any = _MinimalWriter(
                    handle, delimiter=config.delimiter, quotechar=config.quotechar, lineterminator=config.newline,
                ) if config.quoting == "minimal" else csv.writer(
                    handle, delimiter=config.delimiter, quotechar=config.quotechar, quoting=_QUOTING[config.quoting],
                    lineterminator=config.newline, escapechar=None)
                if config.header:
                    writer.writerow(data.schema.names)
                for batch in map(python_safe, batches(data)):
                    columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
                    writer.writerows([_cell(v, config.null_value) for v in row] for row in zip(*columns, strict=True))
                    rows += batch.num_rows
            os.chmod(tmp_name, _file_mode(target))
            os.replace(tmp_name, target)
        except (csv.Error, UnicodeEncodeError) as exc:
            raise DriverError(f"cannot write {target}: {exc}", step_id=step_id,
                              hint="choose another quoting, delimiter or encoding") from None
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
        report_written(ctx, config.target, rows)
        return {}
