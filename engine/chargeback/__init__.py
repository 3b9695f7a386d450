"""(Book, plan, period) -> Result, pure: drivers, allocate, reciprocal, charge, journal, recovery,
tie-outs.
"""
