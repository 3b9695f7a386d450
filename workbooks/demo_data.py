"""The demo's data: State University — Central IT, fiscal year July 2025 to June 2026.

The story the numbers tell (see `docs/rules-language.md` and the demo's Rules notes):

- Central IT (the IT internal service fund) recovers its costs from about 25
  schools and departments in the General, Grants and Auxiliary funds, and from
  two of its own units in the IT fund (so the intra-fund journal shows).
- Support pools step down: Facilities splits 70/30 into Data Center and
  Network; IT Management and HR Services serve each other (reciprocal) and
  IT Management spreads onto the service pools by their direct cost.
- Virtual Servers over-recovers: its rate card (95.00, cut to 88.00 in
  January) was set before a consolidation lowered its cost, so the forecast
  proposes a lower break-even rate.
- Storage under-recovers: the tiered volume discount is too generous for the
  research data growth, so the proposed rate is higher.
- Cloud usage grows about 6% a month against a flat plan: the TREND forecast
  for vCPU-Hours and Cloud cost sits visibly above the Budget.
- Endpoint counts are missing for December 2025 (the scanner failed), so the
  Security rule's IF NO USAGE EVENLY splits that month evenly.

Everything is generated from a seeded RNG, so the workbook is the same on
every run. Money is Decimal to the cent; quantities are whole numbers or
Decimals with at most two places, so nothing depends on binary floats.
"""

from __future__ import annotations

import calendar
import random
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

SEED = 20250701
ORGANIZATION = "State University — Central IT"
FISCAL_PERIODS = [f"2025-{m:02d}" for m in range(7, 13)] + [f"2026-{m:02d}" for m in range(1, 7)]
BILLED_PERIODS = FISCAL_PERIODS[:9]  # July 2025 .. March 2026
BILLED_PERIOD = BILLED_PERIODS[-1]

CENT = Decimal("0.01")


def cents(x: float | Decimal) -> Decimal:
    return Decimal(str(x)).quantize(CENT, rounding=ROUND_HALF_UP)


# --- departments ------------------------------------------------------------


@dataclass(frozen=True)
class Department:
    code: str
    name: str
    fund: str
    parent: str
    headcount: int
    students: int = 0
    square_feet: int = 0
    billable: bool = True
    servers: int = 0
    """Physical/virtual hosts in the data center (Server Hours = servers x hours in month)."""
    vms: int = 0
    storage_gb: int = 0
    vcpu_hours: int = 0
    """July 2025 cloud vCPU-Hours; grows about 6% a month."""
    aws: int = 0
    """July 2025 AWS spend in dollars (EC2 + S3), passed through at cost + 5%."""


# fmt: off
DEPARTMENTS: list[Department] = [
    Department("ENG", "College of Engineering", "General", "PRV", 420, 5200, 310000,
               servers=24, vms=46, storage_gb=42000, vcpu_hours=60000, aws=6200),
    Department("CAS", "College of Arts & Sciences", "General", "PRV", 610, 9800, 420000,
               servers=10, vms=31, storage_gb=26000, vcpu_hours=25000, aws=1500),
    Department("MED", "School of Medicine", "General", "PRV", 880, 1400, 520000,
               servers=30, vms=64, storage_gb=61000, vcpu_hours=45000, aws=7400),
    Department("BUS", "School of Business", "General", "PRV", 210, 3100, 140000,
               servers=4, vms=14, storage_gb=9000, vcpu_hours=4000, aws=900),
    Department("LAW", "School of Law", "General", "PRV", 120, 700, 90000,
               vms=6, storage_gb=3800),
    Department("EDU", "College of Education", "General", "PRV", 160, 2300, 95000,
               vms=8, storage_gb=5200),
    Department("NUR", "School of Nursing", "General", "PRV", 140, 1600, 80000,
               vms=7, storage_gb=4600),
    Department("FAR", "College of Fine Arts", "General", "PRV", 130, 1200, 150000,
               vms=5, storage_gb=14000),
    Department("LIB", "University Library", "General", "PRV", 95, 0, 210000,
               servers=6, vms=12, storage_gb=38000),
    Department("PRV", "Office of the Provost", "General", "PRES", 60, 0, 22000,
               vms=3, storage_gb=2100),
    Department("REG", "Office of the Registrar", "General", "PRV", 45, 0, 12000,
               servers=3, vms=9, storage_gb=3300),
    Department("ADM", "Admissions & Enrollment", "General", "PRV", 70, 0, 18000,
               servers=2, vms=6, storage_gb=2900),
    Department("STU", "Student Affairs", "General", "PRES", 110, 0, 60000,
               vms=7, storage_gb=3600),
    Department("FIN", "Finance & Administration", "General", "PRES", 150, 0, 40000,
               servers=5, vms=15, storage_gb=6800),
    Department("HRO", "Human Resources Office", "General", "FIN", 65, 0, 15000,
               servers=2, vms=5, storage_gb=2500),
    # The President's office is absorbed by central overhead: it reports usage but is not billed.
    Department("PRES", "Office of the President", "General", "", 25, 0, 9000,
               billable=False, vms=2, storage_gb=900),
    Department("RES", "Research Office", "Grants", "PRV", 85, 0, 30000,
               servers=4, vms=10, storage_gb=12000, vcpu_hours=20000, aws=2100),
    Department("CRC", "Clinical Research Center", "Grants", "MED", 190, 0, 70000,
               servers=8, vms=22, storage_gb=48000, vcpu_hours=30000, aws=3300),
    Department("CCR", "Center for Climate Research", "Grants", "RES", 55, 0, 25000,
               servers=6, vms=12, storage_gb=90000, vcpu_hours=80000, aws=8800),
    Department("ATH", "Athletics", "Auxiliary", "PRES", 230, 0, 380000,
               servers=3, vms=11, storage_gb=7400, aws=1200),
    Department("HOU", "Housing", "Auxiliary", "STU", 140, 0, 900000,
               servers=2, vms=8, storage_gb=3900),
    Department("DIN", "Dining Services", "Auxiliary", "STU", 180, 0, 120000,
               vms=4, storage_gb=1800),
    Department("BKS", "University Bookstore", "Auxiliary", "FIN", 35, 0, 30000,
               vms=2, storage_gb=800),
    Department("PRK", "Parking & Transportation", "Auxiliary", "FIN", 60, 0, 45000,
               vms=3, storage_gb=1200),
    # Two units inside the IT fund itself: their bills post as intra-fund reimbursements.
    Department("ITAD", "IT Application Development", "IT", "FIN", 48, 0, 9000,
               servers=7, vms=38, storage_gb=16000, vcpu_hours=15000, aws=2600),
    Department("ITPM", "IT Project Management Office", "IT", "FIN", 22, 0, 4000,
               vms=2, storage_gb=1100),
]
# fmt: on


# Billed, but with no Email: `costloop email` lists them rather than failing them.
NO_EMAIL = ("BKS", "PRK")


def department_email(code: str) -> str | None:
    if code in NO_EMAIL:
        return None
    return f"finance-{code.lower()}@stateu.example"


# --- pools ------------------------------------------------------------------


@dataclass(frozen=True)
class Pool:
    name: str
    tower: str
    service: str
    monthly_budget: int
    """Planned direct cost per month, in dollars."""
    actual_factor: float
    """Actual direct cost / budget, on average (the ITFM story lives here)."""
    accounts: tuple[tuple[str, str, float], ...]
    """(Account, Description, share of the pool's cost) for the Actuals lines."""
    metric: str = ""
    planned_volume: int = 0


_STAFF = (("5100", "Salaries and wages", 0.62), ("5200", "Fringe benefits", 0.23))
_CONTRACTS = (("5300", "Contracts and maintenance", 0.10), ("5400", "Supplies", 0.05))

# fmt: off
POOLS: list[Pool] = [
    Pool("Facilities", "Facilities & Power", "Data center space and power", 64000, 1.01,
         (("5600", "Utilities - power and cooling", 0.55), ("5610", "Space lease", 0.45))),
    Pool("IT Management", "IT Management", "CIO office, finance, vendor management", 120000,
         0.99, _STAFF + _CONTRACTS),
    Pool("HR Services", "IT Management", "HR business partner and payroll for IT", 38000, 1.0,
         _STAFF + _CONTRACTS),
    Pool("Data Center", "Data Center", "Hosting, racks, server hours", 165000, 1.02,
         (("5100", "Salaries and wages", 0.35), ("5200", "Fringe benefits", 0.13),
          ("5410", "Hardware depreciation", 0.34), ("5300", "Contracts and maintenance", 0.18))),
    Pool("Network", "Network", "Campus wired and wireless network", 142000, 0.98,
         (("5100", "Salaries and wages", 0.40), ("5200", "Fringe benefits", 0.15),
          ("5500", "Circuits and telecom", 0.30), ("5300", "Contracts and maintenance", 0.15))),
    Pool("Service Desk", "End User", "Service desk and desktop support", 96000, 1.0,
         _STAFF + _CONTRACTS),
    Pool("ERP", "Application", "Finance, HR and student ERP", 205000, 1.0,
         (("5700", "Software licenses", 0.55), ("5100", "Salaries and wages", 0.30),
          ("5200", "Fringe benefits", 0.15))),
    Pool("Security", "Security & Compliance", "Endpoint protection, SOC", 78000, 1.01,
         (("5700", "Software licenses", 0.45), ("5100", "Salaries and wages", 0.40),
          ("5200", "Fringe benefits", 0.15))),
    Pool("Academic Technology", "Application", "Learning management system", 41000, 1.0,
         (("5700", "Software licenses", 0.70), ("5100", "Salaries and wages", 0.30))),
    # Consolidation cut Virtual Servers' cost well under the plan the rate was set on.
    Pool("Virtual Servers", "Compute", "Managed virtual machines", 34000, 0.74,
         (("5410", "Hardware depreciation", 0.45), ("5700", "Software licenses", 0.35),
          ("5100", "Salaries and wages", 0.20)), "VM-Month", 405),
    # Storage runs over plan: research data keeps growing and the tiers are too generous.
    Pool("Storage", "Storage", "Enterprise and research storage", 22000, 1.08,
         (("5410", "Hardware depreciation", 0.55), ("5300", "Contracts and maintenance", 0.30),
          ("5100", "Salaries and wages", 0.15)), "GB-Month", 410000),
    # Cloud's actual cost follows usage (computed in `cloud_cost`), not the flat plan.
    Pool("Cloud", "Compute", "Public cloud compute (brokered)", 26000, 1.0,
         (("5800", "Cloud services", 1.0),), "vCPU-Hours", 290000),
    # Pass-through: the actual is the AWS invoice for EC2 and S3 plus support (`actuals_rows`).
    Pool("Cloud Pass-through", "Compute", "AWS invoices passed through at cost + 5%", 39900,
         1.0, (("5810", "AWS invoice", 1.0),), "AWS Cost", 38000),
]
# fmt: on

CHARGED_POOLS = ("Virtual Servers", "Storage", "Cloud", "Cloud Pass-through")

# --- rates and rules --------------------------------------------------------

# (Metric, Rate, Pool, Unit, TierFrom, TierTo, EffectiveFrom)
RATES: list[tuple] = [
    ("VM-Month", Decimal("95.00"), "Virtual Servers", "VM per month", None, None, "2025-07"),
    ("VM-Month", Decimal("88.00"), "Virtual Servers", "VM per month", None, None, "2026-01"),
    ("GB-Month", Decimal("0.0800"), "Storage", "GB per month", 0, 10000, "2025-07"),
    ("GB-Month", Decimal("0.0400"), "Storage", "GB per month", 10000, None, "2025-07"),
]

CLOUD_TIERS = "FIRST 5000 AT 0.12, NEXT 45000 AT 0.09, ABOVE AT 0.07"

# (ID, Rule, Enabled, Note)
# fmt: off
RULES: list[tuple[str, str, str, str]] = [
    ("R01", 'ALLOCATE "Facilities" TO POOLS BY 70% "Data Center", 30% "Network"', "Y",
     "Step-down: space and power, split by floor area of the machine rooms."),
    ("R02", 'ALLOCATE "IT Management" TO POOLS "HR Services", "Data Center", "Network", '
            '"Service Desk", "ERP", "Security", "Academic Technology", "Virtual Servers", '
            '"Storage", "Cloud" BY COST RECIPROCAL',
     "Y", "CIO overhead onto every service pool by its direct cost; pass-through excluded."),
    ("R03", 'ALLOCATE "HR Services" TO POOLS "IT Management" AND DEPARTMENTS '
            'BY USAGE "HR Tickets" RECIPROCAL',
     "Y", "HR and IT Management serve each other: solved together (reciprocal method)."),
    ("R04", 'ALLOCATE "Data Center" TO DEPARTMENTS BY USAGE "Server Hours"', "Y",
     "Hosting by metered server hours; includes the Facilities and IT Management shares."),
    ("R05", 'ALLOCATE "Network" TO DEPARTMENTS BY Headcount', "Y",
     "Network by Departments!Headcount."),
    ("R06", 'ALLOCATE "Service Desk" TO DEPARTMENTS BY USAGE "Service Tickets" '
            "IF NO USAGE KEEP",
     "Y", "Tickets closed in the month; a month with none keeps the cost in the pool."),
    ("R07", 'ALLOCATE "ERP" TO DEPARTMENTS BY 40% "FIN", 25% "HRO", 20% "REG", 15% "RES"', "Y",
     "Fixed shares agreed by the ERP steering committee for FY26."),
    ("R08", 'ALLOCATE "Security" TO DEPARTMENTS BY USAGE "Endpoints" IF NO USAGE EVENLY', "Y",
     "Endpoint scan counts; December 2025 scan failed, so that month splits evenly."),
    ("R09", 'ALLOCATE "Academic Technology" TO DEPARTMENTS EVENLY WHERE Fund = "General"', "Y",
     "The learning management system is funded by General-fund units only."),
    ("R10", 'CHARGE "Virtual Servers" FOR "VM-Month" AT RATE CARD', "Y",
     "Rate card on the Rates sheet: 95.00, cut to 88.00 from January 2026."),
    ("R11", 'CHARGE "Storage" FOR "GB-Month" AT RATE CARD', "Y",
     "Tiered rate card: first 10,000 GB at 0.08, the rest at 0.04."),
    ("R12", f'CHARGE "Cloud" FOR "vCPU-Hours" TIERED {CLOUD_TIERS}', "Y",
     "Graduated per department per month."),
    ("R13", 'CHARGE "Cloud Pass-through" FOR "AWS Cost" AT 1.05 WHERE Service IN ("EC2", "S3")',
     "Y", "AWS EC2 and S3 at cost plus 5% (AWS support); Marketplace goes via Procurement."),
    ("F01", 'FORECAST USAGE "vCPU-Hours" BY TREND OVER 6 PERIODS', "Y",
     "Cloud keeps growing: the trend line, not the flat plan."),
    ("F02", 'FORECAST COST "Cloud" BY TREND OVER 6 PERIODS', "Y", "Cloud cost follows usage."),
    ("F03", 'FORECAST USAGE "GB-Month" BY GROWTH 1.5% PER PERIOD', "Y",
     "Research data grows about 1.5% a month."),
    ("F04", 'FORECAST COST "Data Center" BY PLAN', "Y", "Data Center cost is contracted."),
    ("F05", 'FORECAST USAGE "VM-Month" BY RUN RATE OVER 3 PERIODS', "Y",
     "VM counts are flat after consolidation."),
    ("F06", 'FORECAST COST "Cloud Pass-through" BY RUN RATE', "Y",
     "Pass-through cost follows the AWS invoices (average of the last 3 months)."),
    ("X01", 'ALLOCATE "Network" TO DEPARTMENTS BY USAGE "Endpoints"', "N",
     "Proposed FY27 network driver, not yet approved (disabled: R05 applies)."),
]
# fmt: on

SETTINGS: list[tuple[str, object]] = [
    ("Organization", ORGANIZATION),
    ("Currency", "USD"),
    ("Period", BILLED_PERIOD),
    ("FiscalYearStart", 7),
    ("CostBasis", "ACTUAL"),
    ("ITFund", "IT"),
    ("RevenueAccount", "4400"),
    ("ExpenseAccount", "6400"),
    ("ReimbursementAccount", "6499"),
    ("DueFromAccount", "1300"),
    ("DueToAccount", "2300"),
    ("ReserveDays", 60),
    ("EmailFrom", "itfinance@stateu.example"),
    ("EmailSubject", "State University IT charges for {period}"),
    ("EmailBody", "Dear {department}, attached are your IT charges for {period}: {total}."),
]

# --- generated rows ---------------------------------------------------------

_SEASON = {  # academic-calendar load on the service desk and HR
    "07": 0.8,
    "08": 1.35,
    "09": 1.25,
    "10": 1.0,
    "11": 0.95,
    "12": 0.7,
    "01": 1.2,
    "02": 1.0,
    "03": 1.0,
    "04": 1.0,
    "05": 1.05,
    "06": 0.75,
}


def _days(period: str) -> int:
    year, month = map(int, period.split("-"))
    return calendar.monthrange(year, month)[1]


def _poisson(rng: random.Random, mean: float) -> int:
    # Knuth's method is fine for the small means of ticket counts; normal approximation above.
    if mean > 30:
        return max(0, round(rng.gauss(mean, mean**0.5)))
    limit, k, p = pow(2.718281828459045, -mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def usage_rows(rng: random.Random) -> list[tuple]:
    """(Period, Department, Metric, Quantity, Service, Reference) for every billed month."""
    rows: list[tuple] = []
    for i, period in enumerate(BILLED_PERIODS):
        month = period[5:]
        ref = f"MTR-{period.replace('-', '')}"
        for d in DEPARTMENTS:
            if d.servers:
                hours = d.servers * _days(period) * 24 - rng.randrange(0, 6 * d.servers)
                rows.append((period, d.code, "Server Hours", hours, "Hosting", ref))
            tickets = _poisson(rng, d.headcount * 0.11 * _SEASON[month])
            rows.append((period, d.code, "Service Tickets", max(tickets, 1), "Service Desk", ref))
            hr = _poisson(rng, d.headcount * 0.025 * _SEASON[month])
            rows.append((period, d.code, "HR Tickets", hr, "HR", ref))
            if period != "2025-12":  # the endpoint scanner failed in December
                endpoints = round(d.headcount * 1.25 * (1 + 0.004 * i)) + rng.randrange(0, 4)
                rows.append((period, d.code, "Endpoints", endpoints, "Security", ref))
            if d.vms:
                vms = max(1, d.vms + rng.choice((-1, 0, 0, 0, 1)))
                rows.append((period, d.code, "VM-Month", vms, "Virtual Servers", ref))
            if d.storage_gb:
                gb = Decimal(d.storage_gb * 1.015**i * rng.uniform(0.99, 1.01)).quantize(CENT)
                rows.append((period, d.code, "GB-Month", gb, "Storage", ref))
            if d.vcpu_hours:
                vcpu = round(d.vcpu_hours * 1.06**i * rng.uniform(0.97, 1.03))
                rows.append((period, d.code, "vCPU-Hours", vcpu, "Cloud", ref))
            if d.aws:
                base = d.aws * 1.02**i
                for service, share in (("EC2", 0.72), ("S3", 0.28)):
                    cost = cents(base * share * rng.uniform(0.9, 1.1))
                    rows.append((period, d.code, "AWS Cost", cost, service, f"AWS-{period}"))
                if d.code in ("ENG", "CCR", "MED"):  # bought by Procurement: never passed through
                    cost = cents(rng.uniform(150, 900))
                    rows.append((period, d.code, "AWS Cost", cost, "Marketplace", f"AWS-{period}"))
        # IT Management's own HR cases: the reciprocal half of HR Services <-> IT Management.
        rows.append(
            (
                period,
                "IT Management",
                "HR Tickets",
                _poisson(rng, 9 * _SEASON[month]) + 1,
                "HR",
                ref,
            )
        )
    return rows


def cloud_cost(usage: list[tuple], period: str) -> Decimal:
    """The brokered cloud bill: 0.07 per vCPU-hour plus a 3,000 platform fee."""
    hours = sum(r[3] for r in usage if r[0] == period and r[2] == "vCPU-Hours")
    return cents(Decimal(hours) * Decimal("0.07") + 3000)


def aws_invoice(usage: list[tuple], period: str) -> Decimal:
    """The AWS invoice IT pays: EC2 and S3 (Marketplace is invoiced to Procurement)."""
    return sum(
        (r[3] for r in usage if r[0] == period and r[2] == "AWS Cost" and r[4] in ("EC2", "S3")),
        Decimal(0),
    )


def budget_rows() -> list[tuple]:
    """(Period, Pool, Amount, Metric, Volume, Tower, Service) for all 12 months."""
    rows = []
    for period in FISCAL_PERIODS:
        # Summer months carry a little less: fewer contractors, lower cooling load... except July.
        season = Decimal("0.97") if period[5:] in ("06", "08") else Decimal(1)
        for p in POOLS:
            amount = cents(Decimal(p.monthly_budget) * season)
            volume = p.planned_volume or None
            rows.append((period, p.name, amount, p.metric or None, volume, p.tower, p.service))
    return rows


def actuals_rows(rng: random.Random, usage: list[tuple]) -> list[tuple]:
    """(Period, Pool, Amount, Account, Description) for every billed month."""
    rows = []
    for period in BILLED_PERIODS:
        for p in POOLS:
            if p.name == "Cloud":
                total = cloud_cost(usage, period)
            elif p.name == "Cloud Pass-through":
                # The invoice passed through, plus AWS Enterprise Support (5% of it): the
                # 5% markup exists to recover exactly that.
                invoice = aws_invoice(usage, period)
                support = cents(invoice * Decimal("0.05"))
                rows.append((period, p.name, invoice, "5810", "AWS invoice - EC2 and S3"))
                rows.append((period, p.name, support, "5811", "AWS Enterprise Support"))
                continue
            else:
                total = cents(p.monthly_budget * p.actual_factor * rng.uniform(0.97, 1.03))
            # Split over accounts; the last line takes the rounding so lines sum to the total.
            remaining = total
            for n, (account, description, share) in enumerate(p.accounts):
                last = n == len(p.accounts) - 1
                amount = remaining if last else cents(total * Decimal(str(share)))
                remaining -= amount
                rows.append((period, p.name, amount, account, description))
    return rows


@dataclass(frozen=True)
class DemoData:
    settings: list[tuple]
    departments: list[tuple]
    budget: list[tuple]
    actuals: list[tuple]
    usage: list[tuple]
    rates: list[tuple]
    rules: list[tuple]


def demo_data() -> DemoData:
    """Every sheet's rows, deterministic for a fixed SEED."""
    rng = random.Random(SEED)
    usage = usage_rows(rng)
    departments = [
        (
            d.code,
            d.name,
            d.fund,
            d.parent or None,
            "Y" if d.billable else "N",
            department_email(d.code),
            d.headcount,
            d.students,
            d.square_feet,
        )
        for d in DEPARTMENTS
    ]
    return DemoData(
        settings=SETTINGS,
        departments=departments,
        budget=budget_rows(),
        actuals=actuals_rows(rng, usage),
        usage=usage,
        rates=RATES,
        rules=RULES,
    )


# --- a closed month, a late meter reading and two disputes (docs/audit.md) -------------

CLOSED_PERIOD = "2026-02"
CLOSED_RUN = ("demo0226run1", "2026-03-02 09:00:00")
"""The run of February that finance reviewed (a fixed id and time: the demo is reproducible)."""
CLOSE = ("demo0226close", "2026-03-03 17:00:00")
LATE_USAGE = [("2026-02", "ENG", "Server Hours", 2160, "Hosting", "MTR-202602-LATE")]
"""Three servers' February hours, read after February was closed: billed in March as a
correction of February."""
DISPUTES = [
    ("D-2026-017", "ENG", "2026-02", "Cloud", "Rate", 250, "Accepted", 120,
     "vCPU-Hours billed at the old tier; credit agreed with the department", None),
    ("D-2026-018", "MED", "2026-02", "Service Desk", "Volume", 85, "Open",
     None, "tickets of a shared lab counted twice?", None),
]  # fmt: skip
"""(Dispute, Department, Period, Pool, Reason, Amount, Status, Resolution, Note, Raised)."""
