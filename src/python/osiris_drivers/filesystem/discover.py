"""The `filesystem` family's catalog: the CSV files a connection's `path` names (a file, a folder's `*.csv`, or a
glob), each with the columns and types pyarrow's CSV reader infers from a bounded sample (the first
`SAMPLE_BYTES`; a header row, UTF-8, the delimiter sniffed among `DELIMITERS`) and a row estimate extrapolated
from it; and
dry-run plans of the CSV components (the source file and its header; whether the target file is created or
replaced)."""

from __future__ import annotations

import csv
import glob
import io
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from osiris_core.driver import DriverConfig, StepContext, StepPlan
from osiris_core.errors import DriverError, InputError
from osiris_core.targets import file_uri
from osiris_drivers.catalog import Catalog, Column, FamilyCatalog, Relation
from osiris_drivers.filesystem.connection import PATH_HINT, FileSettings
from osiris_drivers.filesystem.csv_extractor.driver import CsvExtractorConfig
from osiris_drivers.filesystem.csv_writer.driver import CsvWriterConfig

SAMPLE_BYTES = 1 << 20
"""How much of each file discovery reads."""
SNIFF_BYTES = 64 << 10
DELIMITERS = ",;\t|"
"""The delimiters discovery recognises (comma when the sample shows none of them clearly)."""
CSV_SUFFIX = ".csv"
GLOB_CHARACTERS = frozenset("*?[")


class FileCatalog(FamilyCatalog[FileSettings]):
    settings = FileSettings

    def discover(self, settings: FileSettings, schema: str | None) -> Catalog:
        if schema is not None:
            raise InputError("--schema does not apply to a filesystem connection",
                             hint="its `path` names a CSV file, a folder of them, or a glob")
        return Catalog(file_uri(settings.path), None, (), tuple(_relation(path) for path in files(settings.path)))

    def plan(self, step_id: str, config: DriverConfig, input_columns: tuple[str, ...] | None,
             ctx: StepContext) -> StepPlan | None:
        if isinstance(config, CsvExtractorConfig):
            return _plan_read(step_id, config)
        if isinstance(config, CsvWriterConfig):
            return _plan_write(step_id, config)
        return None

    def extractor(self, reference: str, settings: FileSettings, relation: Relation) -> tuple[str, dict[str, Any]]:
        """`filesystem.csv_extractor` with the delimiter discovery found."""
        path = Path(relation.path or relation.name)
        delimiter = sniff_delimiter(_head(path)[0])
        return "filesystem.csv_extractor", {"path": str(path), **({"delimiter": delimiter} if delimiter != "," else {})}


def files(path: str) -> list[Path]:
    """The file `path` names, the `*.csv` files of the folder it names, or the files its glob matches."""
    given = Path(path)
    if given.is_file():
        return [given]
    if given.is_dir():
        return sorted(p for p in given.iterdir() if p.is_file() and p.suffix.lower() == CSV_SUFFIX)
    if GLOB_CHARACTERS & set(path):
        return sorted(Path(p) for p in glob.glob(path, recursive=True) if Path(p).is_file())
    raise FileNotFoundError(2, "no such file or folder", path)


def _relation(path: Path) -> Relation:
    def found(columns: tuple[Column, ...] = (), rows: int | None = None, note: str | None = None) -> Relation:
        return Relation(path.name, "file", columns, file_uri(path), rows=rows, note=note, path=str(path))

    head, whole = _head(path)
    if not head.strip():
        return found(rows=0 if whole else None)
    delimiter = sniff_delimiter(head)
    try:
        sample = pacsv.read_csv(io.BytesIO(head), parse_options=pacsv.ParseOptions(delimiter=delimiter),
                                convert_options=pacsv.ConvertOptions(null_values=[""], strings_can_be_null=True))
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        return found(note=f"cannot parse the first {len(head)} bytes as CSV (delimiter {delimiter!r}, header, "
                          f"UTF-8): {' '.join(str(exc).split())}")
    columns = tuple(Column(field.name, str(field.type), sample.column(i).null_count > 0)
                    for i, field in enumerate(sample.schema))
    undecodable = [c.name for c in columns if c.type == "binary"]
    note = f"columns {undecodable} are not UTF-8: set `encoding` on the step" if undecodable else None
    return found(columns, sample.num_rows if whole else round(sample.num_rows * path.stat().st_size / len(head)),
                 note)


def _head(path: Path) -> tuple[bytes, bool]:
    """The first `SAMPLE_BYTES` of the file, cut after its last whole line; whether that is the whole file."""
    size = path.stat().st_size
    with path.open("rb") as stream:
        head = stream.read(SAMPLE_BYTES)
    if len(head) >= size:
        return head, True
    return head[:head.rfind(b"\n") + 1], False


def sniff_delimiter(head: bytes) -> str:
    """The delimiter of a CSV sample, among `DELIMITERS`; a comma when the sample does not say."""
    try:
        return csv.Sniffer().sniff(head[:SNIFF_BYTES].decode("utf-8", "replace"), delimiters=DELIMITERS).delimiter
    except csv.Error:
        return ","


def _plan_read(step_id: str, config: CsvExtractorConfig) -> StepPlan:
    """The checks `filesystem.csv_extractor` makes before it reads, and its columns from the header."""
    path = Path(config.path)
    if not path.is_file():
        raise DriverError(f"CSV file not found: {path}", step_id=step_id, hint=PATH_HINT)
    if not config.header and not config.column_names:
        raise DriverError("header is false but no column_names are given", step_id=step_id,
                          hint="set column_names, or header: true")
    columns = tuple(config.column_names or ()) or _header(step_id, config, path)
    return StepPlan(source=config.target, columns=columns, detail=f"reads {path}: {len(columns)} columns")


def _header(step_id: str, config: CsvExtractorConfig, path: Path) -> tuple[str, ...]:
    quoting = config.quoting == "minimal"
    try:
        with path.open(encoding=config.encoding, newline="") as stream:
            reader = csv.reader(stream, delimiter=config.delimiter, quotechar=config.quotechar,
                                quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE)
            return tuple(next(reader, []))
    except (csv.Error, UnicodeDecodeError) as exc:
        raise DriverError(f"cannot parse {path}: {exc}", step_id=step_id,
                          hint="check delimiter, encoding and quoting") from None


def _plan_write(step_id: str, config: CsvWriterConfig) -> StepPlan:
    """`filesystem.csv_writer` replaces the whole file atomically, or creates it (and its folders)."""
    path = Path(config.path)
    if path.is_dir():
        raise DriverError(f"cannot write {path}: it is a folder", step_id=step_id, hint="`path` must name a file")
    if path.is_file():
        return StepPlan(target=config.target, action="replace", target_exists=True,
                        detail=f"file {path} exists: replaced by the new rows (atomically)")
    return StepPlan(target=config.target, action="create", target_exists=False,
                    detail=f"file {path} does not exist: created (with its folders)")
