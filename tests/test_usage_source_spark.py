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

from costloop.engine.pipeline import prepare
from costloop.engine.xlsx_file import FileWorkbook

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
