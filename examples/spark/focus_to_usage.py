"""Sum FinOps FOCUS (or Usage-column) files to costloop's Usage on Spark, for when one machine
is outgrown.

costloop's own UsageSource does this with DuckDB on one machine (engine/read/usage_source.py);
this job does the same mapping and the same sum on a Spark cluster and writes one small
Parquet file in Usage's columns, which the workbook then names as its UsageSource:

    spark-submit examples/spark/focus_to_usage.py s3://bills/focus/ out/usage.parquet \\
        --department-tag cost-center
    # Settings: UsageSource = out/usage.parquet

The mapping (docs/scale.md): Period is the month of ChargePeriodStart; Department is
the tag named by --department-tag (Tags JSON), else SubAccountId; each row gives a
consumption line (ConsumedUnit, ConsumedQuantity) and a cost line (EffectiveCost, or
BilledCost when there is no EffectiveCost); Service is ServiceName. Quantities are
summed as DECIMAL(38, 9), exactly as costloop does.

Rows Spark cannot use (no period, no department, a negative consumed quantity) are
counted and printed per reason, and nothing is written (exit 1), as costloop's own
read stops at a bad row: a bill must not silently leave usage out. With
--leave-out-bad-lines they are left out and the sum is written. costloop checks the
summed file again when it reads it (unknown departments are named there, at the summed
file's rows).
"""

from __future__ import annotations

import argparse
import sys

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

QUANTITY = "decimal(38,9)"


def usage_lines(source: DataFrame, department_tag: str | None) -> DataFrame:
    """One row per consumption or cost line, in Usage's columns (unsummed)."""
    columns = set(source.columns)
    if "ChargePeriodStart" not in columns:  # already Usage's columns
        return source.select(
            F.col("Period").cast("string").alias("Period"),
            F.trim(F.col("Department").cast("string")).alias("Department"),
            F.trim(F.col("Metric").cast("string")).alias("Metric"),
            F.col("Quantity").cast(QUANTITY).alias("Quantity"),
            (
                F.coalesce(F.trim(F.col("Service")), F.lit(""))
                if "Service" in columns
                else F.lit("")
            ).alias("Service"),
        )
    if department_tag:
        department = F.get_json_object(F.col("Tags"), f"$['{department_tag}']")
    else:
        department = F.col("SubAccountId")
    period = F.date_format(F.to_timestamp("ChargePeriodStart"), "yyyy-MM")
    service = (
        F.coalesce(F.trim(F.col("ServiceName")), F.lit(""))
        if "ServiceName" in columns
        else F.lit("")
    )
    cost = "EffectiveCost" if "EffectiveCost" in columns else "BilledCost"
    base = source.select(
        period.alias("Period"),
        F.trim(department.cast("string")).alias("Department"),
        service.alias("Service"),
        F.col(cost).cast(QUANTITY).alias("cost"),
        *(
            [
                F.trim(F.col("ConsumedUnit")).alias("unit"),
                F.col("ConsumedQuantity").cast(QUANTITY).alias("consumed"),
            ]
            if {"ConsumedUnit", "ConsumedQuantity"} <= columns
            else [
                F.lit(None).cast("string").alias("unit"),
                F.lit(None).cast(QUANTITY).alias("consumed"),
            ]
        ),
    )
    costs = base.select(
        "Period",
        "Department",
        F.lit(cost).alias("Metric"),
        F.col("cost").alias("Quantity"),
        "Service",
    )
    consumed = base.where(
        F.col("unit").isNotNull() & (F.col("unit") != "") & F.col("consumed").isNotNull()
    ).select(
        "Period",
        "Department",
        F.col("unit").alias("Metric"),
        F.col("consumed").alias("Quantity"),
        "Service",
    )
    return costs.unionByName(consumed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="a FOCUS or Usage-column Parquet/CSV file or folder")
    parser.add_argument("target", help="the summed Usage Parquet file to write")
    parser.add_argument("--department-tag", help="the FOCUS tag holding the department")
    parser.add_argument("--csv", action="store_true", help="the source is CSV, not Parquet")
    parser.add_argument(
        "--leave-out-bad-lines",
        action="store_true",
        help="write the sum without the lines that cannot be used (default: write nothing)",
    )
    args = parser.parse_args(argv)

    # FOCUS timestamps are UTC; in the cluster's own zone a charge starting at midnight on
    # the 1st would fall in the previous month west of Greenwich (as costloop reads them).
    spark = (
        SparkSession.builder.appName("costloop-usage")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    reader = spark.read.option("header", True).option("inferSchema", True)
    source = reader.csv(args.source) if args.csv else spark.read.parquet(args.source)
    lines = usage_lines(source, args.department_tag)

    checks = {
        "no period (ChargePeriodStart/Period is not a date or YYYY-MM)": F.col("Period").isNull()
        | ~F.col("Period").rlike(r"^\d{4}-\d{1,2}$"),
        "blank department": F.col("Department").isNull() | (F.col("Department") == ""),
        "blank metric": F.col("Metric").isNull() | (F.col("Metric") == ""),
        "no quantity": F.col("Quantity").isNull(),
        "negative consumed quantity": (F.col("Quantity") < 0)
        & ~F.col("Metric").isin("EffectiveCost", "BilledCost"),
    }
    counts = lines.select(
        *[F.sum(F.when(test, 1).otherwise(0)).alias(name) for name, test in checks.items()]
    ).first()
    bad = [name for name in checks if counts[name]]
    verb = "left out" if args.leave_out_bad_lines else "cannot use"
    for name in bad:
        print(f"{verb} {counts[name]:,} line(s): {name}", file=sys.stderr)
    if bad and not args.leave_out_bad_lines:
        print(
            f"nothing was written to {args.target}: fix the source, or run again with "
            "--leave-out-bad-lines to bill without those lines",
            file=sys.stderr,
        )
        spark.stop()
        return 1
    good = lines
    for test in checks.values():
        good = good.where(~F.coalesce(test, F.lit(False)))

    summed = (
        good.groupBy("Period", "Department", "Metric", "Service")
        .agg(F.sum("Quantity").cast(QUANTITY).alias("Quantity"))
        .orderBy("Period", "Department", "Metric", "Service")
    )
    # The sums are few (periods x departments x metrics x services): one file, for Excel's side.
    summed.coalesce(1).write.mode("overwrite").parquet(args.target)
    print(f"wrote {summed.count():,} usage rows to {args.target}")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
