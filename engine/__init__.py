"""The engine: read a Book, order the rules, allocate, charge, forecast, write back."""
