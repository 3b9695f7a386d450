"""The ITFM loop over a run's result: forecast and break-even rates, variance, compliance."""
