"""Workbook -> (Book, problems): every input sheet read, validated and typed, and UsageSource."""
