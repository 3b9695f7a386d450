"""The Spark example sums a FOCUS file to exactly the usage costloop's own DuckDB path gives.

Needs pyspark and a Java runtime (not dependencies of costloop: a Spark cluster has
them); skipped without them, like the LibreOffice tests without LibreOffice.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from test_usage_source import _book_with_source

from costloop.engine.pipeline.run import prepare
from costloop.engine.xlsx.file_workbook import FileWorkbook

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "spark" / "focus_to_usage.py"

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("pyspark") is None or shutil.which("java") is None,
    reason="pyspark and Java are needed to run the Spark example",
)


def _focus(path: Path) -> None:
    duckdb.sql(
        f"""COPY (
              SELECT TIMESTAMP '2026-01-01' + INTERVAL (i % 3) MONTH AS ChargePeriodStart,
                     'acct-' || (i % 4) AS SubAccountId,
                     '{{"cost-center": "' || (['ENG', 'FIN', 'eng ', 'HRO'])[1 + i % 4] || '"}}'
                       AS Tags,
                     (['vCPU-Hours', 'GB-Month'])[1 + i % 2] AS ConsumedUnit,
                     (i % 97) / 8.0 AS ConsumedQuantity,
                     round((i % 53) / 7.0, 2) AS EffectiveCost,
                     (['EC2', 'S3'])[1 + i % 2] AS ServiceName
              FROM range(5000) t(i))
            TO '{path}' (FORMAT parquet)"""
    )


def test_spark_and_duckdb_sum_focus_alike(tmp_path):
    duck_book, _ = _book_with_source(
        tmp_path / "duck", "focus.parquet", {"UsageDepartmentTag": "cost-center"}
    )
    _focus(tmp_path / "duck" / "focus.parquet")
    spark_book, _ = _book_with_source(tmp_path / "spark", "summed.parquet")
    done = subprocess.run(
        [
            sys.executable,
            str(EXAMPLE),
            str(tmp_path / "duck" / "focus.parquet"),
            str(tmp_path / "spark" / "summed.parquet"),
            "--department-tag",
            "cost-center",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    def usage(book):
        frame = prepare(FileWorkbook(book)).book.usage
        return sorted(
            (r.Period, r.Department, r.Metric, r.Service, r.Quantity)
            for r in frame.itertuples(index=False)
        )

    from_duckdb = usage(duck_book)
    assert len(from_duckdb) > 10
    assert usage(spark_book) == from_duckdb


def test_spark_reads_focus_timestamps_in_utc_whatever_the_computers_zone(tmp_path):
    # As the DuckDB path: west of Greenwich, midnight UTC on 1 March is still February.
    book, _ = _book_with_source(tmp_path, "summed.parquet")
    focus = tmp_path / "focus.parquet"
    duckdb.sql(
        f"""COPY (SELECT TIMESTAMPTZ '2026-03-01 00:00:00+00' AS ChargePeriodStart,
                         'ENG' AS SubAccountId, 2.5 AS EffectiveCost)
            TO '{focus}' (FORMAT parquet)"""
    )
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), str(focus), str(tmp_path / "summed.parquet")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "TZ": "America/Los_Angeles"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    usage = prepare(FileWorkbook(book)).book.usage
    assert list(zip(usage["Period"], usage["Quantity"], strict=True)) == [("2026-03", 2.5)]


def test_spark_writes_nothing_when_it_cannot_use_a_line_unless_told_to_leave_it_out(tmp_path):
    # costloop's own read stops at a bad row; the Spark job must not bill less silently.
    focus = tmp_path / "focus.parquet"
    duckdb.sql(
        f"""COPY (SELECT * FROM (VALUES
                (TIMESTAMP '2026-03-01', 'ENG', 2.5), (TIMESTAMP '2026-03-01', NULL, 4.0)
            ) t(ChargePeriodStart, SubAccountId, EffectiveCost))
            TO '{focus}' (FORMAT parquet)"""
    )
    target = tmp_path / "summed.parquet"

    def spark(*options: str) -> subprocess.CompletedProcess:
        command = [sys.executable, str(EXAMPLE), str(focus), str(target), *options]
        return subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)

    refused = spark()
    assert refused.returncode == 1
    assert "cannot use 1 line(s): blank department" in refused.stderr
    assert f"nothing was written to {target}" in refused.stderr
    assert not target.exists()
    left_out = spark("--leave-out-bad-lines")
    assert left_out.returncode == 0, left_out.stderr[-3000:]
    assert "left out 1 line(s): blank department" in left_out.stderr
    assert duckdb.sql(f"SELECT sum(Quantity) FROM '{target}/*.parquet'").fetchall() == [(2.5,)]
