"""Department bills: one workbook and its PDF per department, and emailing them.

The two entry points the command line and the Excel add-in call:

- `make_bills(book, outdir) -> BillsReport`
- `send_bills(book, dry_run=None) -> EmailReport`
"""

from costloop.bills.commands import BillsReport, make_bills
from costloop.bills.emailing import EmailReport, send_bills

__all__ = ["BillsReport", "EmailReport", "make_bills", "send_bills"]
