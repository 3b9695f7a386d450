"""Excel front ends: the live-workbook gateway over xlwings, the ribbon's entry points,
and the add-in's sources and build.

Only this package imports xlwings; the engine never does. Importing
``costloop.addin`` itself needs nothing beyond the engine, so the add-in build
runs where xlwings is not installed.
"""
