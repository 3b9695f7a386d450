"""Headless LibreOffice recalculation and the copy-back of formula values."""
