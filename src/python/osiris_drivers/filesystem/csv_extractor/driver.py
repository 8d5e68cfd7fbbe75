"""`filesystem.csv_extractor`: a streaming CSV reader on pyarrow.csv."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.csv as pacsv
from pydantic import Field

from osiris_core.driver import MAIN_OUTPUT, Driver, StepContext, StepInputs, StepOutputs
from osiris_core.errors import DriverError
from osiris_drivers.filesystem.connection import PATH_HINT, FileSettings
from osiris_drivers.filesystem.dialect import Encoding, OneChar

BLOCK_SIZE = 8 << 20
"""Bytes per read block; types are inferred from the first block, so it is generous."""


class CsvExtractorConfig(FileSettings):
    delimiter: OneChar = ","
    header: bool = True
    column_names: list[str] | None = None
    encoding: Encoding = "utf-8"
    quotechar: OneChar = '"'
    quoting: Literal["minimal", "none"] = "minimal"
    newlines_in_values: bool = False
    null_values: list[str] = Field(default_factory=lambda: [""])


class CsvExtractor(Driver[CsvExtractorConfig]):
    config_model = CsvExtractorConfig

    def run(self, *, step_id: str, config: CsvExtractorConfig, inputs: StepInputs,
            ctx: StepContext) -> StepOutputs:
        path = Path(config.path)
        if not path.is_file():
            raise DriverError(f"CSV file not found: {path}", step_id=step_id, hint=PATH_HINT)
        if not config.header and not config.column_names:
            raise DriverError("header is false but no column_names are given", step_id=step_id,
                              hint="set column_names, or header: true")
        read_options = pacsv.ReadOptions(
            encoding=config.encoding,
            block_size=BLOCK_SIZE,
            column_names=config.column_names,
            skip_rows=1 if config.header and config.column_names else 0,
        )
        parse_options = pacsv.ParseOptions(
            delimiter=config.delimiter,
            quote_char=config.quotechar if config.quoting == "minimal" else False,
            newlines_in_values=config.newlines_in_values,
        )
        convert_options = pacsv.ConvertOptions(null_values=config.null_values, strings_can_be_null=True)
        try:
            reader = pacsv.open_csv(path, read_options=read_options, parse_options=parse_options,
                                    convert_options=convert_options)
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            raise DriverError(f"cannot parse {path}: {exc}", step_id=step_id,
                              hint="check delimiter, encoding and quoting") from None
        except OSError as exc:
            raise config.failure(exc, step_id=step_id, role="read") from None
        undecodable = [f.name for f in reader.schema if pa.types.is_binary(f.type)]
        if undecodable:
            raise DriverError(f"columns {undecodable} of {path} are not valid {config.encoding}", step_id=step_id,
                              hint="set `encoding` to the file's encoding (e.g. latin-1, cp1252, utf-16)")
        ctx.source_opened(config.target, columns=reader.schema.names)
        return {MAIN_OUTPUT: reader}
