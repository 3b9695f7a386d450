"""costloop: spreadsheet-native IT financial management and chargeback."""

__version__ = "0.1.0"
