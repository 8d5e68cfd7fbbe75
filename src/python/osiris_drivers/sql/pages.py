"""Reading a table in primary-key order, one page at a time, with the next page read ahead in a thread.

ConnectorX's Arrow stream reads ahead without limit when its consumer is slower (a database writer), so a
large table read as one stream can fill memory. Pages bound that: at most three pages are in memory (being
consumed, queued, being read), while the database and the consumer still overlap. MySQL's pages are read whole
(`SqlSource.WHOLE_PAGES`): ConnectorX's stream holds the GIL while it waits for the database, stopping the
consumer meanwhile.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

import pyarrow as pa

PAGE_ROWS = 65_536
KEY_ALIAS = "__osiris_pk"
"""The page queries select the key once more, last, under this name; it is dropped from the output."""

PageBatches = Callable[[int | None], Iterator[pa.RecordBatch]]
"""Batches of the page after the given key (None: the first page), key last, at most `page_rows` rows."""


def keyset_pages(read_page: PageBatches, schema: pa.Schema, *, limit: int | None, page_rows: int = PAGE_ROWS,
                 name: str = "osiris-pages") -> Iterator[pa.RecordBatch]:
    """Every page's batches without the key column, until a short page or `limit` rows."""
    pages: queue.Queue[list[pa.RecordBatch] | BaseException | None] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item: list[pa.RecordBatch] | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                pages.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def read_pages() -> None:
        after: int | None = None
        total = 0
        try:
            while True:
                batches = [b for b in read_page(after) if b.num_rows]
                if not put(batches):
                    return
                rows = sum(b.num_rows for b in batches)
                total += rows
                if rows < page_rows or (limit is not None and total >= limit):
                    break
                after = int(batches[-1].column(batches[-1].num_columns - 1)[-1].as_py())
            put(None)
        except BaseException as exc:
            put(exc)

    threading.Thread(target=read_pages, name=name, daemon=True).start()
    remaining = limit
    try:
        while (item := pages.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            for batch in item:
                out = pa.RecordBatch.from_arrays(batch.columns[:-1], schema=schema)
                if remaining is not None:
                    out = out.slice(0, remaining)
                    remaining -= out.num_rows
                yield out
                if remaining == 0:
                    return
    finally:
        stop.set()
