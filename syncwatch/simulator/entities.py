"""The firm's vocabulary: legal entities, grades and rates, and the entities its systems hold.

Plain dataclasses; firm.Firm creates and changes them, payloads.py says how each system shows them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class LegalEntity:
    code: str
    region: str
    currency: str
    country: str  # ISO 3166-1 alpha-2
    tax_rate: float  # VAT/GST on invoices


LEGAL_ENTITIES = (
    LegalEntity("SW-US-01", "NA", "USD", "US", 0.0), LegalEntity("SW-CA-01", "NA", "CAD", "CA", 0.05),
    LegalEntity("SW-UK-01", "EMEA", "GBP", "GB", 0.2), LegalEntity("SW-DE-01", "EMEA", "EUR", "DE", 0.19),
    LegalEntity("SW-FR-01", "EMEA", "EUR", "FR", 0.2), LegalEntity("SW-SG-01", "APAC", "SGD", "SG", 0.09),
    LegalEntity("SW-AU-01", "APAC", "AUD", "AU", 0.1),
)
ENTITY_BY_CODE = {le.code: le for le in LEGAL_ENTITIES}
ENTITY_WEIGHTS = (34, 6, 20, 14, 8, 10, 8)
FX_PER_USD = {"USD": 1.0, "CAD": 1.36, "GBP": 0.79, "EUR": 0.92, "SGD": 1.34, "AUD": 1.52}
SERVICE_LINES = ("Strategy", "Technology", "Data & AI", "Operations", "Risk & Compliance")
INDUSTRIES = ("Banking", "Insurance", "Retail", "Energy", "Healthcare", "Public Sector", "Telecom", "Manufacturing")
# grade: (hourly cost in USD, bill-rate multiple of cost, share of headcount)
GRADES = {
    "Analyst": (52.0, 2.6, 30), "Consultant": (70.0, 2.4, 30), "Senior Consultant": (90.0, 2.3, 18),
    "Manager": (118.0, 2.1, 14), "Director": (165.0, 1.9, 8),
}
FIRST = ("Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kemi", "Liam",
         "Maya", "Nils", "Olga", "Priya", "Quinn", "Rosa", "Sami", "Tara", "Umar", "Vera", "Wen", "Yusuf", "Zoe")
LAST = ("Adams", "Berger", "Chen", "Dubois", "Evans", "Fischer", "Garcia", "Haddad", "Ito", "Jensen", "Khan",
        "Lopez", "Meyer", "Nakamura", "Okafor", "Petrov", "Rossi", "Singh", "Tanaka", "Ueda", "Weber", "Zhang")
COMPANY = ("Northwind", "Bluepeak", "Cedar", "Harbor", "Ironbridge", "Lumen", "Meridian", "Oakline", "Pioneer",
           "Quarry", "Redwood", "Summit", "Tidewater", "Vantage", "Westgate", "Zenith", "Aurora", "Granite")
COMPANY_KIND = ("Bank", "Insurance", "Retail", "Energy", "Health", "Logistics", "Telecom", "Foods", "Motors")
HOURS_PER_WEEK = (40, 40, 40, 32, 24)


def money(x: float) -> float:
    return round(x + 1e-9, 2)


def iso_week(d: date) -> str:
    year, week, _ = d.isocalendar()
    return f"{year}-W{week:02d}"


def add_workdays(d: date, n: int) -> date:
    while n > 0:
        d += timedelta(days=1)
        n -= d.weekday() < 5
    return d


def next_monday(d: date) -> date:
    return d + timedelta(days=7 - d.weekday())


@dataclass
class Consultant:
    person_id: str
    name: str
    grade: str
    region: str
    legal_entity: str
    currency: str
    service_line: str
    cost_rate: float
    bill_rate: float
    effective_date: date
    assignments: list[Assignment] = field(default_factory=list)

    def busy_on(self, d: date) -> bool:
        return any(a.end_date >= d for a in self.assignments)


@dataclass
class Client:
    client_id: str
    name: str
    industry: str
    region: str
    legal_entity: str
    currency: str
    country: str
    owner_id: str  # the account's partner
    customer_id: str = ""  # the ERP's customer number, once its first deal is won


@dataclass
class Opportunity:
    opportunity_id: str
    client_id: str
    name: str
    amount: float
    currency: str
    stage: str
    close_date: date
    service_line: str
    legal_entity: str
    region: str
    owner_id: str
    weeks: int
    team_size: int

    @property
    def expected_start(self) -> date:
        return next_monday(self.close_date + timedelta(days=7))


@dataclass
class Project:
    project_id: str
    opportunity_id: str
    client_id: str
    name: str
    budget: float
    currency: str
    legal_entity: str
    region: str
    service_line: str
    start_date: date
    end_date: date
    team_size: int
    status: str = "setup"  # setup -> staffed -> active -> closed; or lost (never reached the PSA)
    manager_id: str = ""
    assignments: list[Assignment] = field(default_factory=list)


@dataclass
class Assignment:
    assignment_id: str
    project_id: str
    person_id: str
    role: str
    start_date: date
    end_date: date
    hours_per_week: int
    bill_rate: float
    currency: str
    billable: bool
    region: str  # the consultant's
    legal_entity: str


@dataclass
class TimeEntry:
    entry_id: str
    timesheet_id: str
    assignment_id: str
    person_id: str
    project_id: str
    day: date
    hours: float
    billable: bool


@dataclass
class Timesheet:
    timesheet_id: str
    person_id: str
    project_id: str
    assignment_id: str
    region: str  # the project's: approved time is revenue of the project's entity
    legal_entity: str
    service_line: str
    week_start: date
    bill_rate: float
    currency: str
    billable: bool
    approver_id: str
    entries: list[TimeEntry] = field(default_factory=list)
    status: str = "open"  # open -> submitted -> approved -> invoiced; or lost (never reached the PSA)
    invoice_id: str = ""
    withheld: bool = False  # set by the feed's unbilled-timesheet fault: never invoiced

    @property
    def week(self) -> str:
        return iso_week(self.week_start)

    @property
    def week_end(self) -> date:
        return self.week_start + timedelta(days=6)

    @property
    def period(self) -> str:
        return self.week_start.strftime("%Y-%m")

    @property
    def hours(self) -> float:
        return round(sum(e.hours for e in self.entries), 2)

    @property
    def amount(self) -> float:
        return money(self.hours * self.bill_rate) if self.billable else 0.0


@dataclass
class InvoiceLine:
    timesheet_id: str
    person_id: str
    week: str
    hours: float
    unit_price: float
    amount: float


@dataclass
class Invoice:
    invoice_id: str
    project_id: str
    client_id: str
    customer_id: str
    amount: float  # before tax
    tax_amount: float
    currency: str
    period: str
    lines: tuple[InvoiceLine, ...]
    legal_entity: str
    region: str
    service_line: str
    issue_date: date
    due_date: date

    @property
    def timesheet_ids(self) -> tuple[str, ...]:
        return tuple(line.timesheet_id for line in self.lines)


@dataclass(frozen=True)
class Fact:
    """One business happening: `kind` names it, `obj` is the entity it is about."""

    kind: str
    at: datetime
    obj: Any
    extra: dict[str, Any] = field(default_factory=dict)
