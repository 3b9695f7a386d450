"""Shared types and values, no IO: the Book, results, money, currencies, periods."""
