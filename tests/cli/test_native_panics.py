"""`quiet_native_panics`: Rust panic reports written to fd 2 during a run are dropped, everything else passes."""

from __future__ import annotations

import os
from pathlib import Path

from osiris_cli.native_panics import quiet_native_panics

REPORT = (b"thread '<unnamed>' (1370) panicked at /src/arrow_batch_iter.rs:162:39:\n"
          b"cx writer failed: Source(MySQLError(MySqlError { ERROR 1242 (21000): Subquery returns more than 1 row }))\n"
          b"note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n")


def test_a_panic_report_is_dropped_and_the_rest_passes(tmp_path: Path) -> None:
    sink = tmp_path / "stderr"
    saved = os.dup(2)
    with sink.open("wb") as handle:
        os.dup2(handle.fileno(), 2)
        try:
            with quiet_native_panics():
                os.write(2, b"progress 1.0s: ext read\nthread")  # a partial line that may begin a report
                os.write(2, b" is not a panic\n")
                for i in range(0, len(REPORT), 7):  # as Rust writes it: in pieces
                    os.write(2, REPORT[i:i + 7])
                os.write(2, b"Run failed in 1.0s\nno newline at the end")
            os.write(2, b"\nafter\n")
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    assert sink.read_bytes() == (b"progress 1.0s: ext read\nthread is not a panic\nRun failed in 1.0s\n"
                                 b"no newline at the end\nafter\n")
