"""A deterministic demo organization: same seed and clock start, same data and same ids.

Everything is drawn from one `random.Random(seed)`, in a fixed order, so a test can rebuild the
organization and get byte-identical answers. Lead dates spread over the two years before `now`.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from close_mcp.sandbox.store import (
    JSON,
    Contact,
    CustomField,
    EmailAccount,
    EmailTemplate,
    Event,
    IdMaker,
    Lead,
    LeadStatus,
    Opportunity,
    OpportunityStatus,
    Organization,
    Pipeline,
    SavedSearch,
    Sequence,
    Store,
    Subscription,
    Task,
    User,
)

STATUS_LABELS = ["Potential", "Bad Fit", "Qualified", "Customer", "Canceled"]
INDUSTRIES = ["Software", "Manufacturing", "Healthcare", "Finance", "Retail", "Education"]
PRODUCTS = ["CRM", "Dialer", "Email", "Reporting", "API"]
REGIONS = ["EMEA", "Americas", "APAC"]
SOURCES = ["Webinar", "Referral", "Cold outreach", "Trade show", "Website form"]
FIRST_NAMES = [
    "Anna", "Ben", "Carla", "David", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas",
    "Kara", "Liam", "Mia", "Noah", "Olga", "Pedro", "Quinn", "Rosa", "Sam", "Tara",
    "Zoë", "José", "Søren", "Chloé", "Björn", "Ångela",
]  # fmt: skip
LAST_NAMES = [
    "Smith", "Jones", "Garcia", "Brown", "Nguyen", "Patel", "Kim", "Novak", "Rossi", "Khan",
    "Silva", "Cohen", "Murphy", "Weber", "Olsen", "Müller", "Lindqvist", "Đorđević", "Łukasz",
]  # fmt: skip
COMPANY_WORDS = [
    "Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Vandelay", "Soylent",
    "Tyrell", "Cyberdyne", "Wonka", "Gringotts", "Oceanic", "Nakatomi", "Massive", "Blue",
    "Red", "Northern", "Pacific", "Bright", "Silver", "Atlas", "Zenith", "Café", "Größe",
]  # fmt: skip
COMPANY_SUFFIXES = ["Inc.", "LLC", "Labs", "Systems", "Group", "Partners", "GmbH", "Co."]
PIPELINES = {
    "Sales": [("Discovery", "active"), ("Demo Completed", "active"), ("Proposal Sent", "active"),
              ("Won", "won"), ("Lost", "lost")],
    "Renewals": [("Renewal Due", "active"), ("Renewed", "won"), ("Churned", "lost")],
}  # fmt: skip
TASK_TEXTS = ["Call back", "Send proposal", "Follow up on demo", "Check renewal", "Intro email"]
OPP_SHARE = 0.4  # leads with opportunities (of the first CRM_LEADS)
CRM_LEADS = 400  # opportunities and tasks go on the first leads only, so a large
# organization seeds as fast as before
DELETED_ELSEWHERE = [2, 12, 29, 45]  # days ago: leads deleted in Close's UI (45: past the log)
TITLES = ["CEO", "CTO", "VP Sales", "Head of Operations", "Engineer", "Buyer", ""]


def build_store(n_leads: int, seed: int, now: datetime) -> Store:
    """The demo organization with `n_leads` leads created during the two years before `now`."""
    rng = random.Random(seed)
    new_id = IdMaker(rng)
    org = Organization(id=new_id("orga"), name="Sandbox Sales Co.")
    me = User(new_id("user"), "sandra@sandbox.example", "Sandra", "Box")
    other = User(new_id("user"), "tomas@sandbox.example", "Tomás", "Ortega")
    store = Store(new_id=new_id, org=org, me=me, users={me.id: me, other.id: other})
    for label in STATUS_LABELS:
        status = LeadStatus(new_id("stat"), label)
        store.statuses[status.id] = status
    _custom_fields(store)
    _templates(store)
    _accounts(store, other)
    _sequences(store)
    for _ in range(n_leads):
        lead = _lead(store, rng, now, [me.id, other.id])
        store.leads[lead.id] = lead
    _saved_searches(store)
    _subscriptions(store, rng, now)
    _zoom_account(store)  # last, so the ids drawn before it stay what they were
    _shared_fields(store, random.Random(f"{seed}-shared"), [me.id, other.id], now)
    _crm(store, random.Random(f"{seed}-crm"), now)
    return store


def _custom_fields(store: Store) -> None:
    new_id = store.new_id
    fields = [
        CustomField(new_id("cf"), "Industry", "choices", False, list(INDUSTRIES)),
        CustomField(new_id("cf"), "Products", "choices", True, list(PRODUCTS)),
        CustomField(new_id("cf"), "Deal Size", "number"),
        CustomField(new_id("cf"), "Renewal Date", "date"),
        CustomField(new_id("cf"), "Lead Source", "text"),
        CustomField(new_id("cf"), "Account Owner", "user"),
    ]
    for cf in fields:
        store.custom_fields[cf.id] = cf


def _shared_fields(store: Store, rng: random.Random, user_ids: list[str], now: datetime) -> None:
    """A shared custom field ("Region") with values on most leads.

    Seeded last, from an RNG of its own (its id too), so the ids and values drawn before it
    stay what they were before shared fields existed, and its id is the same whatever the
    number of leads, like the other fields' ids.
    """
    field_id = IdMaker(rng)("cf")
    region = CustomField(field_id, "Region", "choices", False, list(REGIONS), True)
    store.custom_fields[region.id] = region
    for lead in store.leads.values():
        if rng.random() < 0.8:
            lead.custom[region.id] = _value(region, rng, user_ids, now)


def _value(cf: CustomField, rng: random.Random, user_ids: list[str], now: datetime) -> object:
    """A random value `cf` can hold."""
    if cf.type == "choices" and cf.accepts_multiple_values:
        return rng.sample(cf.choices, rng.randint(1, 3))
    if cf.type == "choices":
        return rng.choice(cf.choices)
    if cf.type == "number":
        return rng.randrange(500, 100_000, 500)
    if cf.type == "date":
        return (now + timedelta(days=rng.randint(-200, 400))).date().isoformat()
    if cf.type == "text":
        return rng.choice(SOURCES)
    return rng.choice(user_ids)


def _templates(store: Store) -> None:
    new_id = store.new_id
    templates = [
        EmailTemplate(
            new_id("tmpl"),
            "Intro",
            "Quick question for {{ lead.display_name }}",
            "Hi {{ contact.first_name }},\n\nI work with teams like {{ lead.display_name }} "
            "on their sales process. Worth a chat?\n\n{{ user.first_name }}",
        ),
        EmailTemplate(
            new_id("tmpl"),
            "Follow-up",
            "Following up, {{ contact.first_name }}",
            "Hi {{ contact.first_name }},\n\nJust following up on my last note about "
            "{{ lead.display_name }}.\n\n{{ user.full_name }}",
        ),
        EmailTemplate(
            new_id("tmpl"),
            "Renewal reminder",
            "Your renewal at {{ lead.name }}",
            "Hello {{ contact.name }},\n\nYour plan renews soon.\n\n{{ organization.name }}",
        ),
        EmailTemplate(
            new_id("tmpl"), "Old newsletter", "News", "Hi {{ contact.first_name }}", True
        ),
    ]
    for tmpl in templates:
        store.templates[tmpl.id] = tmpl


def _accounts(store: Store, other: User) -> None:
    me = store.me
    accounts = [
        EmailAccount(
            store.new_id("emailacct"),
            me.id,
            [
                {"email": me.email, "name": me.full_name},
                {"email": "sales@sandbox.example", "name": "Sandbox Sales"},
            ],
        ),
        EmailAccount(
            store.new_id("emailacct"),
            me.id,
            [{"email": "sandra.box@gmail.example", "name": me.full_name}],
        ),
        EmailAccount(
            store.new_id("emailacct"), other.id, [{"email": other.email, "name": other.full_name}]
        ),
    ]
    for account in accounts:
        store.email_accounts[account.id] = account


def _zoom_account(store: Store) -> None:
    """Close lists every connected account, not only email ones: a zoom account of mine, with
    the same id prefix, so only its `_type` and its lack of identities tell it apart."""
    me = store.me
    account: JSON = {
        "id": store.new_id("emailacct"),
        "_type": "zoom",
        "user_id": me.id,
        "email": me.email,
        "identities": [],
        "zoom_account_plan": "pro",
    }
    store.other_accounts[account["id"]] = account


def _sequences(store: Store) -> None:
    tmpl = list(store.templates)
    specs = [("Onboarding", "active", [tmpl[0], tmpl[1]]), ("Win-back", "active", [tmpl[2]])]
    for name, status, template_ids in specs:
        steps = [
            {
                "id": store.new_id("seqstep"),
                "step_type": "email",
                "delay": 0 if i == 0 else 86400 * 3,
                "email_template_id": template_id,
                "threading": "new_thread" if i == 0 else "old_thread",
            }
            for i, template_id in enumerate(template_ids)
        ]
        seq = Sequence(store.new_id("seq"), name, status, steps)
        store.sequences[seq.id] = seq


def _lead(store: Store, rng: random.Random, now: datetime, user_ids: list[str]) -> Lead:
    lead_id = store.new_id("lead")
    created = now - timedelta(seconds=rng.uniform(3600, 2 * 365 * 86400))
    updated = created + timedelta(seconds=rng.uniform(0, (now - created).total_seconds()))
    name = f"{rng.choice(COMPANY_WORDS)} {rng.choice(COMPANY_SUFFIXES)}"
    domain = name.split(" ")[0].lower().encode("ascii", "ignore").decode() or "example"
    without_email = rng.random() < 0.12
    contacts = []
    for _ in range(rng.randint(1, 3)):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        emails = []
        if not without_email:
            local = first.lower().encode("ascii", "ignore").decode() or "contact"
            address = f"{local}.{rng.randint(1, 999)}@{domain}.example"
            emails.append({"email": address, "type": "office"})
            if rng.random() < 0.2:
                emails.append({"email": f"{local}@home.example", "type": "home"})
        phones = [{"phone": f"+1415555{rng.randint(0, 9999):04d}", "type": "office"}]
        contacts.append(
            Contact(
                store.new_id("cont"),
                lead_id,
                f"{first} {last}",
                rng.choice(TITLES),
                emails,
                phones,
                created,
                created,
            )
        )
    status_id = rng.choice(list(store.statuses))
    custom: dict[str, object] = {}
    for cf in store.custom_fields.values():
        if rng.random() < 0.2:
            continue
        custom[cf.id] = _value(cf, rng, user_ids, now)
    url = f"https://{domain}.example" if rng.random() < 0.7 else None
    return Lead(
        lead_id, name, status_id, contacts, custom, created, updated, url,
        f"{name} is a demo lead.", store.me.id,
    )  # fmt: skip


def _saved_searches(store: Store) -> None:
    status_by_label = {s.label: s.id for s in store.statuses.values()}

    def leads_where(field_name: str, condition: dict[str, object]) -> dict[str, object]:
        field = {"type": "regular_field", "object_type": "lead", "field_name": field_name}
        return {
            "type": "and",
            "queries": [
                {"type": "object_type", "object_type": "lead"},
                {"type": "field_condition", "field": field, "condition": condition},
            ],
        }

    qualified = leads_where(
        "status_id",
        {
            "type": "reference",
            "reference_type": "status.lead",
            "object_ids": [status_by_label["Qualified"]],
        },
    )
    thirty_days_ago = {
        "type": "offset",
        "direction": "past",
        "moment": {"type": "now"},
        "offset": {"days": 30},
        "which_day_end": "start",
    }
    recent = leads_where("date_created", {"type": "moment_range", "on_or_after": thirty_days_ago})
    for name, tree in [("Qualified leads", qualified), ("Created in the last 30 days", recent)]:
        view = SavedSearch(
            store.new_id("save"),
            name,
            {"query": tree, "results_limit": None, "sort": []},
            store.me.id,
        )
        store.saved_searches[view.id] = view


def _subscriptions(store: Store, rng: random.Random, now: datetime) -> None:
    """Some contacts already in the first sequence, so "subscribe" has someone to skip."""
    seq_id = next(iter(store.sequences))
    account = next(iter(store.email_accounts.values()))
    for lead in list(store.leads.values())[::10]:
        contact = lead.contacts[0]
        if not contact.emails:
            continue
        sub = Subscription(
            store.new_id("sub"), seq_id, contact.id, lead.id,
            rng.choice(["active", "paused", "finished"]), account.id,
            account.identities[0]["name"], account.identities[0]["email"], now, now,
        )  # fmt: skip
        store.subscriptions[sub.id] = sub


def _crm(store: Store, rng: random.Random, now: datetime) -> None:
    """Pipelines, opportunity statuses, opportunities across them, open and done tasks, and
    leads deleted outside close-mcp (their `deleted` events in the event log).

    Seeded last, from an RNG and ids of its own, so everything drawn before keeps its ids
    and values, and ids the sandbox makes later (`store.new_id`) stay what they were.
    """
    new_id = IdMaker(rng)
    for name, statuses in PIPELINES.items():
        pipeline = Pipeline(new_id("pipe"), name)
        store.pipelines[pipeline.id] = pipeline
        for label, kind in statuses:
            status = OpportunityStatus(new_id("stat"), label, kind, pipeline.id)
            store.opportunity_statuses[status.id] = status
    opp_statuses = list(store.opportunity_statuses.values())
    users = list(store.users)
    for lead in list(store.leads.values())[:CRM_LEADS]:
        if rng.random() < OPP_SHARE:
            for _ in range(rng.randint(1, 2)):
                opp = _opportunity(lead, rng, new_id("oppo"), rng.choice(opp_statuses), users, now)
                store.opportunities[opp.id] = opp
        if rng.random() < 0.5:
            for _ in range(rng.randint(1, 2)):
                task = _task(lead, rng, new_id("task"), users, now)
                store.tasks[task.id] = task
    for days in DELETED_ELSEWHERE:
        scratch = Store(new_id, store.org, store.me, statuses=store.statuses)
        scratch.custom_fields = store.custom_fields
        lead = _lead(scratch, rng, now, users)
        when = now - timedelta(days=days, hours=rng.uniform(0, 12))
        for contact in lead.contacts:
            store.events.append(
                Event(new_id("ev"), "contact", contact.id, lead.id, "deleted", when, users[1],
                      previous_data=contact.to_json(store.org))
            )  # fmt: skip
        store.events.append(
            Event(new_id("ev"), "lead", lead.id, lead.id, "deleted", when, users[1],
                  previous_data=lead.to_json(store))
        )  # fmt: skip
    store.events.sort(key=lambda e: e.date_created)


def _opportunity(
    lead: Lead, rng: random.Random, opp_id: str, status: OpportunityStatus, users: list[str],
    now: datetime,
) -> Opportunity:  # fmt: skip
    span = max((now - lead.date_created).total_seconds(), 1.0)
    created = lead.date_created + timedelta(seconds=rng.uniform(0, span))
    updated = created + timedelta(seconds=rng.uniform(0, (now - created).total_seconds()))
    won = None
    if status.type == "won":
        won = updated.date().isoformat()
    elif status.type == "active" and rng.random() < 0.6:  # an expected close date
        won = (now + timedelta(days=rng.randint(-10, 90))).date().isoformat()
    return Opportunity(
        opp_id, lead.id, status.id, rng.choice(users), rng.randrange(50_000, 5_000_000, 10_000),
        rng.choice(["one_time", "one_time", "monthly", "annual"]),
        {"active": rng.choice([10, 25, 50, 75]), "won": 100, "lost": 0}[status.type],
        rng.choice(["", "Budget approved", "Needs legal review", "Champion: CTO"]),
        won, updated if status.type == "lost" else None,
        lead.contacts[0].id if lead.contacts and rng.random() < 0.7 else None,
        date_created=created, date_updated=updated, created_by=users[0], updated_by=users[0],
    )  # fmt: skip


def _task(lead: Lead, rng: random.Random, task_id: str, users: list[str], now: datetime) -> Task:
    due = now + timedelta(days=rng.randint(-30, 30))
    date = due.date().isoformat() if rng.random() < 0.7 else due.replace(microsecond=0).isoformat()
    created = min(now, max(lead.date_created, due - timedelta(days=rng.randint(1, 20))))
    return Task(
        task_id, lead.id, rng.choice(users), rng.choice(TASK_TEXTS), date,
        due < now and rng.random() < 0.5,
        date_created=created, date_updated=created, created_by=users[0], updated_by=users[0],
    )  # fmt: skip
