"""PostgreSQL's binary COPY format from Arrow batches, vectorised (Arrow kernels and `array` byte swaps, never a
loop per row).

`COPY … FROM STDIN (FORMAT binary)` skips the server's text parsing (numbers, dates, timestamps, numerics) and
the client's CSV encoding. Each field must be in the binary form of its *target column's* type, so an encoding
is chosen per column from the Arrow type and the column's PostgreSQL type (`format_type`); `encoder_for` returns
None for any pair it does not cover, and the caller then COPYs the batches as CSV instead.

Covered: integers into smallint/integer/bigint (widened, never narrowed), floats into real/double precision,
booleans, decimals of at most 18 digits into numeric (PostgreSQL applies the column's precision and scale as
it does for text), strings into text/varchar/character(n)/json/jsonb, binary into bytea, date32 into date,
timestamps of s/ms/µs into timestamptz/timestamp (µs since 2000-01-01 UTC; the session is in UTC, so naive values
are UTC as with CSV), times of s/ms/µs into time.
"""

from __future__ import annotations

import array
import functools
import io
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import NamedTuple, TypeAlias

import pyarrow as pa
import pyarrow.compute as pc

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
NULL_FIELD = pa.scalar(b"\xff\xff\xff\xff", pa.binary())
PG_EPOCH_DAYS = 10_957
"""Days from 1970-01-01 to 2000-01-01, PostgreSQL's epoch."""
PG_EPOCH_US = PG_EPOCH_DAYS * 86_400 * 1_000_000
NUMERIC_NEG = 0x4000
NBASE = 10_000
ENCODE_ROWS = 16_384
"""Rows encoded at a time: the encoding's temporaries (a few times the rows' bytes) stay a few MB."""
INDEX_BLOCK_ROWS = 1_024
"""Rows of an interleaving index built at a time."""
INTEGER_DIGITS = 5
"""Base-10000 digits before the point of an int64's magnitude (at most 19 decimal digits)."""


class Fixed(NamedTuple):
    """`width` bytes for each row, back to back in `data`."""

    data: pa.Buffer
    width: int


Part: TypeAlias = "pa.Array | pa.Scalar | Fixed"
Encoder = Callable[[pa.Array], list[Part]]
"""One column's values → the parts of each row's field (4-byte length, then the value's bytes; a NULL is length
-1): a constant (a binary scalar), fixed-width bytes (`Fixed`) or a binary array. `encode_batch` interleaves each
run of constant and fixed-width parts into one array with a single `take`, then joins those with the variable
parts in one pass (the join's cost grows with its number of inputs)."""

_INTEGERS = {"smallint": (pa.int16(), "h"), "integer": (pa.int32(), "i"), "bigint": (pa.int64(), "q")}
_FLOATS = {"real": (pa.float32(), "f"), "double precision": (pa.float64(), "d")}
_PRECISION = re.compile(r"^(timestamp|time)\(\d+\)")
"""A timestamp's or time's fractional-second precision (`timestamp(6) without time zone`): the binary form is the
same, and the server rounds to the precision on input, as it does for text."""
JSONB_VERSION = pa.scalar(b"\x01", pa.binary())
"""jsonb's binary form: a version byte, then the JSON text."""
_TYPES = {"h": pa.int16(), "i": pa.int32(), "q": pa.int64(), "f": pa.float32(), "d": pa.float64(), "B": pa.uint8()}
"""`array` type code → the Arrow type of the same width and kind."""


def _length(width: int) -> pa.Scalar:
    return pa.scalar(width.to_bytes(4, "big"), pa.binary())


def _big_endian(values: pa.Array, code: str) -> Fixed:
    """Each value of a null-free numeric array (cast to `code`'s type, overflow checked) as its big-endian bytes."""
    values = values.cast(_TYPES[code])
    width = _TYPES[code].byte_width
    start = values.offset * width
    swapped = array.array(code)
    swapped.frombytes(memoryview(values.buffers()[1])[start:start + len(values) * width])
    if width > 1:
        swapped.byteswap()
    return Fixed(pa.py_buffer(swapped), width)


def _binary(part: Part, rows: int) -> pa.Array | pa.Scalar:
    """A part as the join takes it: fixed-width bytes become a binary array (no copy of the bytes)."""
    if not isinstance(part, Fixed):
        return part
    return pa.Array.from_buffers(pa.binary(), rows, [None, _offsets(rows, part.width), part.data])


@functools.lru_cache(maxsize=16)
def _offsets(rows: int, width: int) -> pa.Buffer:
    return pa.py_buffer(array.array("i", range(0, (rows + 1) * width, width)))


def _fields(column: pa.Array, parts: list[Part], width: int) -> list[Part]:
    """The parts of fields of `width` bytes: the length and `parts`, or where `column` has NULLs, whole fields."""
    if not column.null_count:
        return [_length(width), *parts]
    fields = pc.binary_join_element_wise(_length(width), *(_binary(p, len(column)) for p in parts), b"")
    return [pc.if_else(column.is_valid(), fields, NULL_FIELD)]


def _numbers(kind: pa.DataType, code: str) -> Encoder:
    def encode(column: pa.Array) -> list[Part]:
        values = column.cast(kind).fill_null(0)
        return _fields(column, [_big_endian(values, code)], kind.byte_width)
    return encode


def _booleans(column: pa.Array) -> list[Part]:
    return _fields(column, [_big_endian(column.cast(pa.uint8()).fill_null(0), "B")], 1)


def _dates(column: pa.Array) -> list[Part]:
    days = pc.subtract(column.cast(pa.int32()).fill_null(PG_EPOCH_DAYS), PG_EPOCH_DAYS)
    return _fields(column, [_big_endian(days, "i")], 4)


def _timestamps(unit: str) -> Encoder:
    per_us = {"s": 1_000_000, "ms": 1_000, "us": 1}[unit]

    def encode(column: pa.Array) -> list[Part]:
        raw = column.cast(pa.int64()).fill_null(0)
        us = pc.subtract_checked(pc.multiply_checked(raw, per_us), PG_EPOCH_US)
        return _fields(column, [_big_endian(us, "q")], 8)
    return encode


def _times(column: pa.Array) -> list[Part]:
    """time: µs since midnight as an int64."""
    us = column.cast(pa.time64("us")).cast(pa.int64()).fill_null(0)
    return _fields(column, [_big_endian(us, "q")], 8)


def _int16(value: int) -> pa.Scalar:
    return pa.scalar(value.to_bytes(2, "big", signed=True), pa.binary())


def _packed(digits: Sequence[pa.Array]) -> list[Fixed]:
    """Base-10000 digits (most significant first) as big-endian int16s, packed four to an int64 (two to an int32,
    one to an int16): the bytes PostgreSQL reads, in a few wide columns instead of one per digit."""
    parts: list[Fixed] = []
    at = 0
    for size, code in ((4, "q"), (2, "i"), (1, "h")):
        while len(digits) - at >= size:
            word = digits[at]
            for digit in digits[at + 1:at + size]:
                word = pc.add(pc.shift_left(word, 16), digit)
            parts.append(_big_endian(word, code))
            at += size
    return parts


def _base_10000(number: pa.Array, count: int) -> list[pa.Array]:
    """The last `count` base-10000 digits of non-negative `number`, most significant first."""
    digits: list[pa.Array] = []
    for _ in range(count):
        rest = pc.divide(number, NBASE)
        digits.append(pc.subtract(number, pc.multiply(rest, NBASE)))
        number = rest
    return digits[::-1]


def _decimals(precision: int, scale: int) -> Encoder:
    """numeric's binary form with a fixed number of base-10000 digits per column (the server strips the zeros):
    enough for `precision - scale` digits before the point and `scale` after it."""
    before = max(1, -(-(precision - scale) // 4))
    after = -(-scale // 4)
    width = 8 + 2 * (before + after)
    head = (before + after) << 48 | (before - 1) << 32 | scale  # ndigits, weight, sign (0: positive), dscale
    positive = pa.scalar(head.to_bytes(8, "big"), pa.binary(8))
    negative = pa.scalar((head | NUMERIC_NEG << 16).to_bytes(8, "big"), pa.binary(8))

    def encode(column: pa.Array) -> list[Part]:
        # The same 16-byte values read at scale 0 are the unscaled integers (at most 18 digits: an int64).
        unscaled = pa.Array.from_buffers(pa.decimal128(18, 0), len(column), column.buffers()[:2],
                                         offset=column.offset).cast(pa.int64())
        unscaled = unscaled.fill_null(0)
        magnitude = pc.abs(unscaled)
        integer = pc.divide(magnitude, 10 ** scale)
        fraction = pc.multiply(pc.subtract(magnitude, pc.multiply(integer, 10 ** scale)), 10 ** (4 * after - scale))
        digits = [*_base_10000(integer, before), *_base_10000(fraction, after)]
        signs = pc.if_else(pc.less(unscaled, 0), negative, positive)
        sign = Fixed(signs.buffers()[1][signs.offset * 8:(signs.offset + len(signs)) * 8], 8)
        return _fields(column, [sign, *_packed(digits)], width)
    return encode


def _jsonb(column: pa.Array) -> list[Part]:
    """jsonb: the version byte before each value's text (a NULL stays NULL: no byte)."""
    return _bytes(pc.binary_join_element_wise(JSONB_VERSION, column.cast(pa.binary()), b""))


def _bytes(column: pa.Array) -> list[Part]:
    """Text or bytea: the length, then the bytes as they are (UTF-8 for text)."""
    values = column if pa.types.is_binary(column.type) else column.cast(pa.binary())
    lengths = _big_endian(pc.binary_length(values).fill_null(-1).cast(pa.int32()), "i")
    return [lengths, values.fill_null(b"")]


def encoder_for(arrow: pa.DataType, target: str) -> Encoder | None:
    """How a column of `arrow` values goes into a column of PostgreSQL type `target` (`format_type` text), or
    None when binary COPY does not cover the pair."""
    t = pa.types
    target = _PRECISION.sub(r"\1", target)
    if t.is_dictionary(arrow):
        inner = encoder_for(arrow.value_type, target)
        return None if inner is None else (lambda column: inner(column.cast(arrow.value_type)))
    if t.is_null(arrow):
        return _null_fields
    if t.is_integer(arrow) and target in _INTEGERS:
        kind, code = _INTEGERS[target]
        bits = arrow.bit_width + (1 if t.is_unsigned_integer(arrow) else 0)
        return _numbers(kind, code) if bits <= kind.bit_width else None
    if t.is_floating(arrow) and target in _FLOATS:
        kind, code = _FLOATS[target]
        return _numbers(kind, code) if arrow.bit_width <= kind.bit_width else None
    if t.is_boolean(arrow) and target == "boolean":
        return _booleans
    if t.is_decimal128(arrow) and arrow.precision <= 18 and arrow.scale >= 0 and target.startswith("numeric"):
        return _decimals(arrow.precision, arrow.scale)
    if (t.is_string(arrow) or t.is_large_string(arrow)) and (target == "text" or
                                                             target.startswith("character varying")):
        return _bytes
    if (t.is_string(arrow) or t.is_large_string(arrow)) and (target == "json" or target == "character" or
                                                             target.startswith("character(")):
        return _bytes  # json's binary form is its text; character(n)'s is too (the server pads it, as for text)
    if (t.is_string(arrow) or t.is_large_string(arrow)) and target == "jsonb":
        return _jsonb
    if (t.is_binary(arrow) or t.is_large_binary(arrow)) and target == "bytea":
        return _bytes
    if t.is_date32(arrow) and target == "date":
        return _dates
    if t.is_timestamp(arrow) and arrow.unit != "ns" and target in ("timestamp with time zone",
                                                                  "timestamp without time zone"):
        return _timestamps(arrow.unit)
    if t.is_time(arrow) and arrow.unit != "ns" and target == "time without time zone":
        return _times
    return None


def _null_fields(column: pa.Array) -> list[Part]:
    return [NULL_FIELD]


def encoders_for(schema: pa.Schema, targets: Sequence[str]) -> list[Encoder] | None:
    """One encoder per column, or None if any column is not covered."""
    found = [encoder_for(field.type, target) for field, target in zip(schema, targets, strict=True)]
    return None if any(e is None for e in found) else [e for e in found if e is not None]


_LANES = {8: pa.uint64(), 4: pa.uint32(), 2: pa.uint16(), 1: pa.uint8()}
"""Interleaving moves lanes of the widest size that divides every width of the run (the fewer, the faster)."""


@functools.lru_cache(maxsize=8)  # per run of parts: for the stream's full slices, and its last
def _interleaving(layout: tuple[tuple[bool, int], ...], rows: int) -> pa.Array:
    """Where each lane of `rows` rows of interleaved parts comes from, in the parts' lanes laid end to end.

    `layout`: (constant?, width in lanes) of each part. Lane `c` of row `r` comes from `start[c] + r * step[c]`,
    `step` being 0 for a constant (its one copy) and its width for a fixed-width part (its `rows` values)."""
    start, step = array.array("i"), array.array("i")
    at = 0
    for constant, width in layout:
        start.extend(range(at, at + width))
        step.extend([0 if constant else width] * width)
        at += width if constant else rows * width

    def int32s(values: array.array[int]) -> pa.Array:
        return pa.Array.from_buffers(pa.int32(), len(values), [None, pa.py_buffer(values)])

    # Built a block of rows at a time (block k is block 0 shifted by k * block * step): its temporaries stay small.
    block = min(rows, INDEX_BLOCK_ROWS)
    row = array.array("i", [r for r in range(block) for _ in start])
    steps = int32s(step * block)
    first = pc.add(int32s(start * block), pc.multiply(int32s(row), steps))
    blocks = [first, *(pc.add(first, pc.multiply(steps, pa.scalar(k * block, pa.int32())))
                       for k in range(1, -(-rows // block)))]
    return pa.concat_arrays(blocks).slice(0, rows * len(start))


def _interleaved(parts: list[pa.Scalar | Fixed], rows: int) -> pa.Array | pa.Scalar:
    """Consecutive constant and fixed-width parts as one binary array (or one constant): one `take` of their bytes."""
    if all(isinstance(part, pa.Scalar) for part in parts):
        return pa.scalar(b"".join(part.as_py() for part in parts if isinstance(part, pa.Scalar)), pa.binary())
    if len(parts) == 1:
        return _binary(parts[0], rows)
    chunks = [part.as_buffer() if isinstance(part, pa.Scalar) else part.data[:rows * part.width] for part in parts]
    layout = tuple((isinstance(p, pa.Scalar), len(c) if isinstance(p, pa.Scalar) else p.width)
                   for p, c in zip(parts, chunks, strict=True))
    width = sum(w for _, w in layout)
    lane = next(size for size in _LANES if all(w % size == 0 for _, w in layout))
    data = pa.py_buffer(b"".join(chunks))
    lanes = pa.Array.from_buffers(_LANES[lane], len(data) // lane, [None, data])
    flat = pc.take(lanes, _interleaving(tuple((constant, w // lane) for constant, w in layout), rows))
    return _binary(Fixed(flat.buffers()[1], width), rows)


def encode_batch(batch: pa.RecordBatch, encoders: Sequence[Encoder]) -> bytes:
    """The batch's tuples in binary COPY format (without the header and trailer)."""
    columns = [part for encode, column in zip(encoders, batch.columns, strict=True) for part in encode(column)]
    parts: list[pa.Array | pa.Scalar] = []
    run: list[pa.Scalar | Fixed] = [_int16(batch.num_columns)]
    for part in columns:
        if isinstance(part, pa.Array):
            parts.extend([_interleaved(run, batch.num_rows), part] if run else [part])
            run = []
        else:
            run.append(part)
    if run:
        parts.append(_interleaved(run, batch.num_rows))
    if not any(isinstance(part, pa.Array) for part in parts):  # every column NULL (or none): one array to join
        parts.append(pa.array([b""] * batch.num_rows, pa.binary()))
    rows: pa.Array = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, b"")
    offsets = pa.Array.from_buffers(pa.int32(), len(rows) + 1, [None, rows.buffers()[1]], offset=rows.offset)
    first, last = offsets[0].as_py(), offsets[len(rows)].as_py()
    data: bytes = rows.buffers()[2][first:last].to_pybytes()
    return data


class BinaryCopyStream(io.RawIOBase):
    """A readable file whose bytes are the batches in binary COPY format, header and trailer included."""

    def __init__(self, batches: Iterable[pa.RecordBatch], encoders: Sequence[Encoder]) -> None:
        super().__init__()
        self._batches: Iterator[pa.RecordBatch] = (batch.slice(start, ENCODE_ROWS) for batch in batches
                                                   for start in range(0, batch.num_rows, ENCODE_ROWS))
        self._encoders = encoders
        self._chunk = HEADER
        self._pos = 0
        self._done = False
        self.rows = 0

    def readable(self) -> bool:
        return True

    def _next_chunk(self) -> bool:
        if self._done:
            return False
        for batch in self._batches:
            self._chunk, self._pos = encode_batch(batch, self._encoders), 0
            self.rows += batch.num_rows
            return True
        self._chunk, self._pos, self._done = TRAILER, 0, True
        return True

    def read(self, size: int | None = -1) -> bytes:
        """Up to `size` bytes of the current chunk (fewer is allowed); b"" at the end."""
        while self._pos >= len(self._chunk):
            if not self._next_chunk():
                return b""
        end = len(self._chunk) if size is None or size < 0 else self._pos + size
        data = self._chunk[self._pos:end]
        self._pos += len(data)
        return data
