"""The department portal: each department's bills on the web, read from the workbook.

`costloop serve BOOK` runs it (FastAPI, Jinja2, htmx, uvicorn); `costloop portal
user add` makes its local accounts. The workbook stays the source of truth: the
portal reads its last run (as `costloop bills` does) and reloads when the file
changes; its own database holds only accounts, failed sign-ins and the audit log.
See docs/portal.md.
"""
