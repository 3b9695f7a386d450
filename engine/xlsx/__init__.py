"""The file host: OOXML package surgery, calamine and fastexcel reads, lossless write-back. No
engine types.
"""
