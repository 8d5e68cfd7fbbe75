"""`filesystem.csv_extractor`: a streaming CSV reader on pyarrow.csv, over one file or every file a glob matches.

Types: declared ones (`column_types`) are used as given; the others are inferred from the first read block of the
first file — except that a number column whose block holds a value with a leading zero (`01234`, `007.5`) is
text, so codes and zip codes keep their digits. Every further file of a glob must have the same header and is
read with the first file's types. NULL: an unquoted field equal to one of `null_values` is NULL; a quoted field
never is (`""` is the empty string) unless `quoted_nulls` is true.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from pydantic import Field

from osiris_core.driver import MAIN_OUTPUT, Driver, StepContext, StepInputs, StepOutputs
from osiris_core.errors import DriverError
from osiris_core.spec import expand_glob
from osiris_drivers.filesystem.connection import PATH_HINT, FileSettings
from osiris_drivers.filesystem.dialect import ColumnType, Encoding, OneChar, arrow_type
from osiris_drivers.sql.incremental import IncrementalOptions, filtered

BLOCK_SIZE = 8 << 20
"""Bytes per read block; types are inferred from the first block, so it is generous."""
LEADING_ZERO = r"^[+-]?0[0-9]"
PARSE_HINT = "check delimiter, encoding, quoting, decimal_separator and column_types"


class CsvExtractorConfig(FileSettings):
    delimiter: OneChar = ","
    header: bool = True
    column_names: list[str] | None = None
    encoding: Encoding = "utf-8"
    quotechar: OneChar = '"'
    quoting: Literal["minimal", "none"] = "minimal"
    newlines_in_values: bool = False
    null_values: list[str] = Field(default_factory=lambda: [""])
    quoted_nulls: bool = False
    column_types: dict[str, ColumnType] = Field(default_factory=dict)
    decimal_separator: Literal[".", ","] = "."
    filename_column: str | None = Field(default=None, min_length=1)
    incremental: IncrementalOptions | None = None
    """Pass on only rows whose cursor is >= the last committed one (every file is still parsed)."""


class _Reader:
    """Opens the files of one step with its options; every failure is a DriverError naming the file."""

    def __init__(self, step_id: str, config: CsvExtractorConfig) -> None:
        self.step_id = step_id
        self.config = config

    def open(self, path: str, types: Mapping[str, pa.DataType]) -> pa.RecordBatchReader:
        config = self.config
        read_options = pacsv.ReadOptions(
            encoding=config.encoding, block_size=BLOCK_SIZE, column_names=config.column_names,
            skip_rows=1 if config.header and config.column_names else 0)
        parse_options = pacsv.ParseOptions(
            delimiter=config.delimiter, quote_char=config.quotechar if config.quoting == "minimal" else False,
            newlines_in_values=config.newlines_in_values)
        convert_options = pacsv.ConvertOptions(
            column_types=dict(types), null_values=config.null_values, strings_can_be_null=True,
            quoted_strings_can_be_null=config.quoted_nulls, decimal_point=config.decimal_separator)
        try:
            return pacsv.open_csv(path, read_options=read_options, parse_options=parse_options,
                                  convert_options=convert_options)
        except (pa.ArrowException, UnicodeDecodeError) as exc:
            raise self.parse_error(path, exc) from None
        except OSError as exc:
            raise config.failure(exc, step_id=self.step_id, role="read") from None

    def parse_error(self, path: str, exc: Exception) -> DriverError:
        hint = PARSE_HINT
        if "invalid value ''" in str(exc) and not self.config.quoted_nulls:
            hint = 'a quoted "" is an empty string, not NULL: set quoted_nulls: true, or declare the column string'
        return DriverError(f"cannot parse {path}: {' '.join(str(exc).split())}", step_id=self.step_id, hint=hint)

    def error(self, message: str, hint: str) -> DriverError:
        return DriverError(message, step_id=self.step_id, hint=hint)


class CsvExtractor(Driver[CsvExtractorConfig]):
    config_model = CsvExtractorConfig

    def incremental(self, config: CsvExtractorConfig) -> tuple[str, ...] | None:
        return config.incremental.columns if config.incremental is not None else None

    def run(self, *, step_id: str, config: CsvExtractorConfig, inputs: StepInputs,
            ctx: StepContext) -> StepOutputs:
        reader = _Reader(step_id, config)
        if not config.header and not config.column_names:
            raise reader.error("header is false but no column_names are given", "set column_names, or header: true")
        files = _files(reader, config.path)
        declared = {name: arrow_type(kind) for name, kind in config.column_types.items()}
        first, schema = _open_first(reader, files[0], declared)
        undecodable = [f.name for f in schema if pa.types.is_binary(f.type)]
        if undecodable:
            raise reader.error(f"columns {undecodable} of {files[0]} are not valid {config.encoding}",
                               "set `encoding` to the file's encoding (e.g. latin-1, cp1252, utf-16)")
        if config.filename_column in schema.names:
            raise reader.error(f"filename_column '{config.filename_column}' is also a column of {files[0]}",
                               "choose another filename_column")
        for path in files[1:]:
            _check_header(reader, path, files[0], schema)
        output = schema.append(pa.field(config.filename_column, pa.string())) if config.filename_column else schema
        ctx.source_opened(config.target, columns=output.names)
        data = pa.RecordBatchReader.from_batches(output, _batches(reader, first, files, schema, output))
        if config.incremental is not None:
            data = filtered(data, config.incremental, ctx.incremental, step_id)
        return {MAIN_OUTPUT: data}


def _files(reader: _Reader, path: str) -> list[str]:
    files = expand_glob(path)
    if not files:
        raise reader.error(f"no CSV file matches {path}", f"{PATH_HINT}; a glob matches regular files only")
    if files == [path] and not Path(path).is_file():  # a plain path (a glob lists only what exists)
        raise reader.error(f"CSV file not found: {path}", PATH_HINT)
    return files


def _open_first(reader: _Reader, path: str, declared: dict[str, pa.DataType]) -> tuple[pa.RecordBatchReader,
                                                                                         pa.Schema]:
    """The first file's reader and schema: declared types, inferred ones, leading-zero numbers as text."""
    first = reader.open(path, declared)
    unknown = sorted(set(declared) - set(first.schema.names))
    if unknown:
        first.close()
        raise reader.error(f"column_types names {unknown}, not columns of {path} (columns: {first.schema.names})",
                           "use the header's column names (or column_names) in column_types")
    numeric = [f.name for f in first.schema if f.name not in declared
               and (pa.types.is_integer(f.type) or pa.types.is_floating(f.type))]
    if not numeric:
        return first, first.schema
    probe = reader.open(path, {**declared, **{name: pa.string() for name in numeric}})
    try:
        block = probe.read_next_batch()
    except StopIteration:
        return first, first.schema
    except pa.ArrowException as exc:
        raise reader.parse_error(path, exc) from None
    finally:
        probe.close()
    text = [name for name in numeric if pc.any(pc.match_substring_regex(block.column(name), LEADING_ZERO)).as_py()]
    if not text:
        return first, first.schema
    first.close()
    kept = reader.open(path, {**declared, **{name: pa.string() for name in text}})
    return kept, kept.schema


def _check_header(reader: _Reader, path: str, first: str, schema: pa.Schema) -> None:
    """A further file of the glob has the first file's header (read with the first file's types)."""
    other = reader.open(path, {f.name: f.type for f in schema})
    names = other.schema.names
    other.close()
    if names != schema.names:
        raise reader.error(f"{path} has the columns {names}, {first} has {schema.names}",
                           "every file a glob matches must have the same header (names and order)")


def _batches(reader: _Reader, first: pa.RecordBatchReader, files: list[str], schema: pa.Schema,
             output: pa.Schema) -> Iterator[pa.RecordBatch]:
    """Every file's batches in turn, each file read only as it is consumed; the file name appended if asked."""
    fixed = {f.name: f.type for f in schema}
    for index, path in enumerate(files):
        current = first if index == 0 else reader.open(path, fixed)
        try:
            while True:
                try:
                    batch = current.read_next_batch()
                except StopIteration:
                    break
                except (pa.ArrowException, UnicodeDecodeError) as exc:
                    raise reader.parse_error(path, exc) from None
                columns = list(batch.columns)
                if len(output) > len(schema):
                    columns.append(pa.repeat(pa.scalar(path, pa.string()), batch.num_rows))
                yield pa.RecordBatch.from_arrays(columns, schema=output)
        finally:
            current.close()
