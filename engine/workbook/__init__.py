"""The host interface every workbook implementation keeps, the cell contract, the in-memory host."""
