"""The portal's Jinja2 templates, one environment for the live portal and the static export.

Autoescaped: every value is text, whatever a workbook cell holds. The static export
(`costloop.portal.export`) renders the same templates with ``static`` set, which drops
the forms, the scripts and the server's absolute links.
"""

from __future__ import annotations

from jinja2 import Environment, PackageLoader

from costloop.bills.workbook import month_label


def page_templates() -> Environment:
    templates = Environment(
        loader=PackageLoader("costloop.portal", "templates"),
        autoescape=True,  # every value is text, whatever a workbook cell holds
        trim_blocks=True,
        lstrip_blocks=True,
        # The templates are files of the installed package: not looked at again per page.
        auto_reload=False,
    )
    templates.filters["month"] = month_label
    return templates
