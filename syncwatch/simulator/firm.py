"""The firm model: a consultancy's people, clients and business process, day by day.

Everything is drawn from one `random.Random(seed)`, so a seed and a start date give the same
firm and the same history every time. The model knows nothing about systems, events or faults:
`Firm.day(d)` returns the business facts of day `d` in time order, and the feed decides how
each system hears about them.

The process: clients exist in the CRM from day one; deals are won when consultants sit on the
bench; a won deal makes the client an ERP customer (first deal only) and a PSA project, which is
staffed from the bench and starts the next Monday; staffed consultants capture time every
working day and submit weekly timesheets on Friday; project managers approve them within three
working days; approved billable time is invoiced once a month (first working day on or after the
10th, after the timesheet cut-off); HR raises a few cost rates at each month start, and hires to
keep a spare bench beyond the seats won deals wait for.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta

from syncwatch.simulator.entities import (
    COMPANY,
    COMPANY_KIND,
    ENTITY_BY_CODE,
    ENTITY_WEIGHTS,
    FIRST,
    FX_PER_USD,
    GRADES,
    HOURS_PER_WEEK,
    INDUSTRIES,
    LAST,
    LEGAL_ENTITIES,
    SERVICE_LINES,
    Assignment,
    Client,
    Consultant,
    Fact,
    Invoice,
    InvoiceLine,
    LegalEntity,
    Opportunity,
    Project,
    TimeEntry,
    Timesheet,
    add_workdays,
    money,
    next_monday,
)


class Firm:
    """A consultancy of `consultants` people serving `clients` clients, simulated from `start`."""

    def __init__(self, seed: int, consultants: int, clients: int, start: date) -> None:
        self.rng = random.Random(seed)
        self.start = start
        self._seq: Counter[str] = Counter()
        self.people = [self._hire(i) for i in range(max(consultants, 2))]
        self._headcount = len(self.people)  # at the opening; hiring stops at twice this
        self.clients = [self._client() for _ in range(max(clients, 1))]
        self.projects: dict[str, Project] = {}
        self.timesheets: dict[str, Timesheet] = {}
        self._agenda: dict[date, list[Callable[[date], list[Fact]]]] = defaultdict(list)
        self._open: dict[tuple[str, str], Timesheet] = {}
        self._demand = 0  # seats on won deals not yet staffed
        self._invoiced_month = ""
        self._raised_month = ""

    # -- ids, time, draws ----------------------------------------------------------------------------

    def _id(self, prefix: str, base: int) -> str:
        self._seq[prefix] += 1
        return f"{prefix}{base + self._seq[prefix]}"

    def at(self, d: date, start_hour: float, end_hour: float) -> datetime:
        seconds = self.rng.randrange(int(start_hour * 3600), int(end_hour * 3600))
        return datetime.combine(d, time(), UTC) + timedelta(seconds=seconds)

    def _entity(self) -> LegalEntity:
        return self.rng.choices(LEGAL_ENTITIES, ENTITY_WEIGHTS)[0]

    def _name(self) -> str:
        return f"{self.rng.choice(FIRST)} {self.rng.choice(LAST)}"

    def _hire(self, i: int, on: date | None = None) -> Consultant:
        """Person `i` of the opening headcount, or (with `on`) a new joiner starting that day."""
        le = self._entity()
        grade = self.rng.choices(list(GRADES), [g[2] for g in GRADES.values()])[0]
        if i == 0:
            grade = "Manager"  # every firm needs someone to approve timesheets
        usd_cost, multiple, _ = GRADES[grade]
        cost = money(usd_cost * self.rng.uniform(0.9, 1.12) * FX_PER_USD[le.currency])
        return Consultant(self._id("E", 1000), self._name(), grade, le.region, le.code, le.currency,
                          self.rng.choice(SERVICE_LINES), cost, money(round(cost * multiple / 5) * 5),
                          on if on is not None else self.start - timedelta(days=self.rng.randrange(30, 900)))

    def _client(self) -> Client:
        le = self._entity()
        name = f"{self.rng.choice(COMPANY)} {self.rng.choice(COMPANY_KIND)}"
        partners = [p for p in self.people if p.grade in ("Director", "Manager")]
        return Client(self._id("C", 1000), name, self.rng.choice(INDUSTRIES), le.region, le.code, le.currency,
                      le.country, self.rng.choice(partners).person_id)

    # -- the day -------------------------------------------------------------------------------------

    def day(self, d: date) -> list[Fact]:
        """The facts of day `d`, in time order. Call once per day, in date order."""
        facts: list[Fact] = self._opening(d) if d == self.start else []
        for action in self._agenda.pop(d, []):
            facts += action(d)
        facts += self._lifecycle(d)
        if d.weekday() < 5:
            facts += self._raises(d) + self._hiring(d) + self._sales(d) + self._capture_time(d) + self._invoice_run(d)
        facts.sort(key=lambda f: f.at)
        return facts

    def _opening(self, d: date) -> list[Fact]:
        facts = [Fact("client.onboarded", self.at(d, 6, 7), c) for c in self.clients]
        return facts + [Fact("person.onboarded", self.at(d, 6, 7), p) for p in self.people]

    def _bench(self, d: date) -> list[Consultant]:
        return [p for p in self.people if not p.busy_on(d)]

    # -- people --------------------------------------------------------------------------------------

    def _hiring(self, d: date) -> list[Fact]:
        """HR keeps a spare bench of a tenth of the headcount beyond the seats won deals wait for, and
        hires a little of any shortfall each working day, up to twice the opening headcount."""
        gap = self._demand + len(self.people) // 10 - len(self._bench(d))
        gap = min(gap, 2 * self._headcount - len(self.people))
        facts = []
        for _ in range(max(gap, 0)):
            if self.rng.random() < 0.1:
                person = self._hire(len(self.people), on=d)
                self.people.append(person)
                facts.append(Fact("person.hired", self.at(d, 8, 10), person))
        return facts

    # -- sales ---------------------------------------------------------------------------------------

    def _sales(self, d: date) -> list[Fact]:
        free = len(self._bench(d)) - self._demand
        facts: list[Fact] = []
        for _ in range(max(free, 0) // 3 + 1):
            roll = self.rng.random()
            if roll < (0.3 if free > 0 else 0.03):
                facts += self._win(d)
            elif roll < 0.5:
                facts.append(Fact("opportunity.lost", self.at(d, 9, 18), self._opportunity(d, "Closed Lost")))
        return facts

    def _opportunity(self, d: date, stage: str) -> Opportunity:
        client = self.rng.choice(self.clients)
        weeks, team = self.rng.randint(4, 14), self.rng.randint(2, 5)
        usd_rate = self.rng.uniform(150, 230)
        amount = round(weeks * team * 36 * usd_rate * FX_PER_USD[client.currency], -3)
        line = self.rng.choice(SERVICE_LINES)
        return Opportunity(self._id("OPP-", 10000), client.client_id, f"{client.name} {line} {d:%Y}", amount,
                           client.currency, stage, d, line, client.legal_entity, client.region, client.owner_id,
                           weeks, team)

    def _win(self, d: date) -> list[Fact]:
        opp = self._opportunity(d, "Closed Won")
        won = Fact("opportunity.won", self.at(d, 9, 17), opp)
        client = next(c for c in self.clients if c.client_id == opp.client_id)
        facts = [won]
        if not client.customer_id:
            client.customer_id = self._id("CUST-", 40000)
            at = won.at + timedelta(minutes=self.rng.randint(2, 40))
            facts.append(Fact("customer.created", at, client, {"opportunity_id": opp.opportunity_id}))
        self._demand += opp.team_size
        self._agenda[add_workdays(d, self.rng.randint(1, 2))].append(lambda day: self._create_project(day, opp))
        return facts

    # -- projects ------------------------------------------------------------------------------------

    def _create_project(self, d: date, opp: Opportunity) -> list[Fact]:
        start = next_monday(d + timedelta(days=2))
        end = start + timedelta(weeks=opp.weeks, days=-3)  # the Friday of the last week
        project = Project(self._id("PRJ-", 5000), opp.opportunity_id, opp.client_id, opp.name, opp.amount,
                          opp.currency, opp.legal_entity, opp.region, opp.service_line, start, end, opp.team_size)
        self.projects[project.project_id] = project
        self._agenda[add_workdays(d, 1)].append(lambda day: self._staff(day, project))
        return [Fact("project.created", self.at(d, 9, 12) if d.weekday() < 5 else self.at(d, 10, 11), project)]

    def _staff(self, d: date, project: Project) -> list[Fact]:
        if project.status == "lost":
            self._demand -= project.team_size
            return []
        bench = self._bench(project.start_date)
        if not bench:  # nobody free: try again tomorrow and start a week later
            if d >= project.start_date - timedelta(days=1):
                project.start_date += timedelta(weeks=1)
                project.end_date += timedelta(weeks=1)
            self._agenda[add_workdays(d, 1)].append(lambda day: self._staff(day, project))
            return []
        bench.sort(key=lambda p: (p.region != project.region, p.service_line != project.service_line,
                                  self.rng.random()))
        team = bench[: project.team_size]
        self._demand -= project.team_size
        managers = [p for p in self.people if p.grade in ("Manager", "Director")]
        project.manager_id = next((p.person_id for p in team if p in managers), self.rng.choice(managers).person_id)
        at = self.at(d, 9, 16)
        facts = [self._assign(project, person, at + timedelta(minutes=i)) for i, person in enumerate(team)]
        project.status = "staffed"
        return [*facts, Fact("project.staffed", at + timedelta(minutes=len(team) + 1), project)]

    def _assign(self, project: Project, person: Consultant, at: datetime) -> Fact:
        fx = FX_PER_USD[project.currency] / FX_PER_USD[person.currency]
        rate = money(round(person.bill_rate * fx / 5) * 5)
        assignment = Assignment(self._id("ASG-", 70000), project.project_id, person.person_id, person.grade,
                                project.start_date, project.end_date, self.rng.choice(HOURS_PER_WEEK), rate,
                                project.currency, self.rng.random() > 0.08, person.region, person.legal_entity)
        person.assignments = [*person.assignments[-1:], assignment]  # the last one may still be running
        project.assignments.append(assignment)
        return Fact("assignment.created", at, assignment)

    def _lifecycle(self, d: date) -> list[Fact]:
        facts: list[Fact] = []
        for project in self.projects.values():
            if project.status == "staffed" and d >= project.start_date:
                project.status = "active"
                facts.append(Fact("project.started", self.at(d, 7, 8), project))
            elif project.status == "active" and d > project.end_date:
                project.status = "closed"
                facts.append(Fact("project.closed", self.at(d, 7, 8), project))
        return facts

    @staticmethod
    def lose(obj: Project | Timesheet) -> None:
        """The PSA never heard of this project or timesheet (a lost sync): no later step happens to it."""
        obj.status = "lost"

    # -- time ----------------------------------------------------------------------------------------

    def _capture_time(self, d: date) -> list[Fact]:
        facts: list[Fact] = []
        for person in self.people:
            for a in person.assignments:
                project = self.projects.get(a.project_id)
                if project and project.status == "active" and a.start_date <= d <= a.end_date:
                    self._log(person, a, project, d)
        if d.weekday() == 4:
            facts += [self._submit(d, sheet) for sheet in self._open.values()]
            self._open.clear()
        return facts

    def _log(self, person: Consultant, a: Assignment, project: Project, d: date) -> None:
        if self.rng.random() < 0.04:
            return  # a day off
        hours = max(0.0, round(self.rng.gauss(a.hours_per_week / 5, 0.6) * 4) / 4)
        if hours:
            sheet = self._sheet(person, a, project, d)
            entry = TimeEntry(self._id("TE-", 1000000), sheet.timesheet_id, a.assignment_id, person.person_id,
                              a.project_id, d, hours, a.billable)
            sheet.entries.append(entry)

    def _sheet(self, person: Consultant, a: Assignment, project: Project, d: date) -> Timesheet:
        key = (person.person_id, a.project_id)
        if key not in self._open:
            week_start = d - timedelta(days=d.weekday())
            sheet = Timesheet(self._id("TS-", 200000), person.person_id, a.project_id, a.assignment_id,
                              project.region, project.legal_entity, project.service_line, week_start, a.bill_rate,
                              a.currency, a.billable, project.manager_id)
            self._open[key] = sheet
            self.timesheets[sheet.timesheet_id] = sheet
        return self._open[key]

    def _submit(self, d: date, sheet: Timesheet) -> Fact:
        sheet.status = "submitted"
        self._agenda[add_workdays(d, self.rng.randint(1, 3))].append(lambda day: self._approve(day, sheet))
        return Fact("timesheet.submitted", self.at(d, 16, 20), sheet)

    def _approve(self, d: date, sheet: Timesheet) -> list[Fact]:
        if sheet.status == "lost":
            return []
        sheet.status = "approved"
        return [Fact("timesheet.approved", self.at(d, 8, 18), sheet)]

    # -- money ---------------------------------------------------------------------------------------

    def _invoice_run(self, d: date) -> list[Fact]:
        month = d.strftime("%Y-%m")
        if d.day < 10 or self._invoiced_month == month:
            return []
        self._invoiced_month = month
        due: dict[str, list[Timesheet]] = defaultdict(list)
        for sheet in self.timesheets.values():
            if sheet.status == "approved" and sheet.billable and not sheet.withheld and sheet.period < month:
                due[sheet.project_id].append(sheet)
        facts = [self._invoice(d, self.projects[pid], sheets) for pid, sheets in due.items()]
        self._prune()
        return facts

    def _prune(self) -> None:
        """Forget what no later step needs, so an endless feed keeps its memory bounded."""
        self.timesheets = {k: s for k, s in self.timesheets.items() if s.status in ("open", "submitted", "approved")
                           and not s.withheld and (s.billable or s.status != "approved")}  # never invoiced
        wanted = {s.project_id for s in self.timesheets.values()}
        self.projects = {k: p for k, p in self.projects.items() if p.status != "closed" or k in wanted}

    def _invoice(self, d: date, project: Project, sheets: list[Timesheet]) -> Fact:
        lines = tuple(InvoiceLine(s.timesheet_id, s.person_id, s.week, s.hours, s.bill_rate, s.amount) for s in sheets)
        amount = money(sum(line.amount for line in lines))
        client = next(c for c in self.clients if c.client_id == project.client_id)
        invoice = Invoice(self._id("INV-", 300000), project.project_id, project.client_id, client.customer_id,
                          amount, money(amount * ENTITY_BY_CODE[project.legal_entity].tax_rate), project.currency,
                          max(s.period for s in sheets), lines, project.legal_entity, project.region,
                          project.service_line, d, d + timedelta(days=30))
        for sheet in sheets:
            sheet.status, sheet.invoice_id = "invoiced", invoice.invoice_id
        return Fact("invoice.created", self.at(d, 10, 15), invoice)

    def _raises(self, d: date) -> list[Fact]:
        month = d.strftime("%Y-%m")
        if d == self.start or self._raised_month == month or d.day > 7:
            return []
        self._raised_month = month
        facts = []
        for person in self.people:
            if self.rng.random() < 0.05:
                previous = person.cost_rate
                person.cost_rate = money(previous * self.rng.uniform(1.03, 1.09))
                person.bill_rate = money(round(person.bill_rate * 1.05 / 5) * 5)
                person.effective_date = d
                facts.append(Fact("cost_rate.changed", self.at(d, 8, 10), person, {"previous_cost_rate": previous}))
        return facts
