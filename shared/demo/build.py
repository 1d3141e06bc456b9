"""Deterministic generator of the bundled demo database: `python -m shared.demo.build [PATH]`.

A small online retail shop (customers in 13 countries, ~50 products in 8 categories, ~2,000 orders
from 2023 to 2025, a sales team). Everything comes from hand-written lists and one fixed random
seed, with the standard library only, so re-running this rewrites `demo.db` with the same content.

Conventions the rest of the product may rely on:

- Timestamps are ISO 8601 text in UTC, `YYYY-MM-DD HH:MM:SS` (what SQLite's own `datetime()`
  produces, so `strftime`, `date()` and plain string comparison all work); pure dates `YYYY-MM-DD`.
- Money is REAL in US dollars rounded to 2 decimals, not INTEGER cents: an analyst (or an LLM)
  writes `SUM(quantity * unit_price)` and reads dollars; cents would make every generated query
  divide by 100 and every forgotten division a silent 100x error. Aggregates should `ROUND(x, 2)`.
- A `--` comment on a `CREATE TABLE` line describes the table; a `--` comment at the end of a
  column line describes that column. SQLite keeps both in `sqlite_master.sql`.
- The data is a snapshot taken at the end of 2025-12-31: recent orders are still pending,
  processing or shipped.
- Rollback journal (`journal_mode=DELETE`), so the shipped file can be opened
  `mode=ro&immutable=1` with no `-wal`/`-shm` side files.
"""

from __future__ import annotations

import os
import random
import sqlite3
import sys
import unicodedata
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path

SEED = 20230101
FIRST_DAY, LAST_DAY = date(2023, 1, 1), date(2025, 12, 31)
N_CUSTOMERS, N_ORDERS = 420, 2000
SCHEMA_VERSION = 1  # stored as PRAGMA user_version

SCHEMA = [
    """CREATE TABLE categories ( -- Product categories of the shop's catalogue
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE, -- e.g. 'Audio', 'Books'
    description TEXT -- short blurb shown in the web shop
)""",
    """CREATE TABLE products ( -- Items for sale; unit_price is the current list price
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    category_id INTEGER NOT NULL REFERENCES categories (id),
    unit_price  REAL NOT NULL CHECK (unit_price > 0), -- current list price, USD (order_items: price paid)
    active      INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)) -- 0 = discontinued, no longer sold
)""",
    """CREATE TABLE customers ( -- People who registered in the web shop
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL, -- full name
    email      TEXT NOT NULL UNIQUE,
    country    TEXT NOT NULL, -- full English country name, e.g. 'United States', 'Germany'
    city       TEXT NOT NULL,
    created_at TEXT NOT NULL -- sign-up time, UTC 'YYYY-MM-DD HH:MM:SS'
)""",
    """CREATE TABLE employees ( -- The sales team and management; reps handle orders of their region
    id         INTEGER PRIMARY KEY,
    first_name TEXT NOT NULL,
    last_name  TEXT NOT NULL,
    email      TEXT NOT NULL UNIQUE,
    title      TEXT NOT NULL, -- e.g. 'Sales Representative', 'Sales Manager'
    region     TEXT CHECK (region IN ('Americas', 'EMEA', 'APAC')), -- sales region; NULL for head office
    hired_at   TEXT NOT NULL, -- hire date 'YYYY-MM-DD'
    manager_id INTEGER REFERENCES employees (id) CHECK (manager_id <> id) -- NULL for the CEO
)""",
    """CREATE TABLE orders ( -- One checkout by a customer; the total is the sum of its order_items
    id          INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (id),
    employee_id INTEGER NOT NULL REFERENCES employees (id), -- sales rep responsible for the order
    status      TEXT NOT NULL, -- 'pending' -> 'processing' -> 'shipped' -> 'delivered', or 'cancelled'
    ordered_at  TEXT NOT NULL, -- UTC 'YYYY-MM-DD HH:MM:SS'
    shipped_at  TEXT, -- NULL until shipped (and for cancelled orders)
    CHECK (status IN ('pending', 'processing', 'shipped', 'delivered', 'cancelled')),
    CHECK (shipped_at >= ordered_at)
)""",
    """CREATE TABLE order_items ( -- Lines of an order; line revenue = quantity * unit_price * (1 - discount)
    order_id   INTEGER NOT NULL REFERENCES orders (id),
    product_id INTEGER NOT NULL REFERENCES products (id),
    quantity   INTEGER NOT NULL CHECK (quantity > 0),
    unit_price REAL NOT NULL CHECK (unit_price > 0), -- price paid per unit in USD, before discount
    discount   REAL NOT NULL DEFAULT 0 CHECK (discount >= 0 AND discount < 1), -- fraction, 0.15 = 15% off
    PRIMARY KEY (order_id, product_id)
)""",
    """CREATE TABLE payments ( -- Money received for orders; an order may be paid in several parts
    id       INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL REFERENCES orders (id),
    method   TEXT NOT NULL CHECK (method IN ('card', 'paypal', 'bank_transfer', 'gift_card')),
    amount   REAL NOT NULL CHECK (amount > 0), -- USD
    paid_at  TEXT NOT NULL -- UTC 'YYYY-MM-DD HH:MM:SS'
)""",
    "CREATE INDEX products_category_id ON products (category_id)",
    "CREATE INDEX orders_customer_id ON orders (customer_id)",
    "CREATE INDEX orders_employee_id ON orders (employee_id)",
    "CREATE INDEX orders_ordered_at ON orders (ordered_at)",
    "CREATE INDEX order_items_product_id ON order_items (product_id)",
    "CREATE INDEX payments_order_id ON payments (order_id)",
]

# Name pools per language: (first names, last names); "_" stands for a space inside a name.
NAMES = {
    "en": (
        "James Mary Robert Patricia John Jennifer Michael Linda William Elizabeth David Susan Oliver "
        "Emma Jack Charlotte Noah Grace Liam Chloe Ethan Ava Lucas Mia",
        "Smith Johnson Williams Brown Jones Miller Davis Wilson Anderson Taylor Thomas Moore Martin "
        "Thompson White Harris Clark Lewis Walker Hall Young King Wright Scott",
    ),
    "de": (
        "Lukas Anna Leon Hannah Felix Lena Jonas Marie Paul Sophie Maximilian Laura Jürgen Katrin",
        "Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Koch Richter",
    ),
    "fr": (
        "Louis Camille Hugo Léa Gabriel Manon Arthur Chloé Jules Inès Théo Juliette",
        "Martin Bernard Dubois Thomas Robert Richard Petit Durand Leroy Moreau Laurent Lefèvre",
    ),
    "es": (
        "José María Carlos Lucía Javier Carmen Diego Sofía Alejandro Valentina Miguel Isabel",
        "García Rodríguez González Fernández López Martínez Sánchez Pérez Gómez Díaz Torres Ramírez",
    ),
    "it": (
        "Marco Giulia Luca Francesca Alessandro Chiara Matteo Sara Lorenzo Martina",
        "Rossi Russo Ferrari Esposito Bianchi Romano Colombo Ricci Marino Greco",
    ),
    "nl": (
        "Daan Emma Sem Julia Lars Sanne Thijs Lotte Bram Fleur",
        "de_Jong Jansen de_Vries van_den_Berg Bakker Visser Smit Meijer de_Boer Mulder",
    ),
    "sv": (
        "Erik Astrid Oskar Elsa Nils Ingrid Axel Maja Gustav Freja",
        "Andersson Johansson Karlsson Nilsson Eriksson Larsson Olsson Persson Svensson Lindberg",
    ),
    "ja": (
        "Haruto Yui Sota Hina Ren Aoi Yuto Sakura Kenji Yuki",
        "Sato Suzuki Takahashi Tanaka Watanabe Ito Yamamoto Nakamura Kobayashi Kato",
    ),
    "pt": (
        "João Ana Pedro Beatriz Gabriel Mariana Rafael Larissa Thiago Camila",
        "Silva Santos Oliveira Souza Pereira Costa Rodrigues Almeida Nascimento Lima",
    ),
}

# (country, language, sales region, weight, cities)
COUNTRIES = [
    ("United States", "en", "Americas", 30, "New York|Los Angeles|Chicago|Houston|Seattle|Boston|Austin"),
    ("Canada", "en", "Americas", 8, "Toronto|Vancouver|Montreal|Calgary"),
    ("Mexico", "es", "Americas", 3, "Mexico City|Guadalajara|Monterrey"),
    ("Brazil", "pt", "Americas", 4, "São Paulo|Rio de Janeiro|Belo Horizonte"),
    ("United Kingdom", "en", "EMEA", 12, "London|Manchester|Birmingham|Edinburgh|Bristol"),
    ("Germany", "de", "EMEA", 10, "Berlin|Munich|Hamburg|Cologne|Frankfurt"),
    ("France", "fr", "EMEA", 8, "Paris|Lyon|Marseille|Toulouse|Bordeaux"),
    ("Spain", "es", "EMEA", 5, "Madrid|Barcelona|Valencia|Seville"),
    ("Italy", "it", "EMEA", 5, "Rome|Milan|Turin|Naples"),
    ("Netherlands", "nl", "EMEA", 4, "Amsterdam|Rotterdam|Utrecht"),
    ("Sweden", "sv", "EMEA", 3, "Stockholm|Gothenburg|Malmö"),
    ("Australia", "en", "APAC", 6, "Sydney|Melbourne|Brisbane|Perth"),
    ("Japan", "ja", "APAC", 4, "Tokyo|Osaka|Yokohama|Kyoto"),
]

CATEGORIES = [
    ("Audio", "Headphones, speakers and home audio"),
    ("Computers", "Laptops, monitors and accessories"),
    ("Phones & Tablets", "Smartphones, tablets and their accessories"),
    ("Home & Kitchen", "Small appliances and cookware"),
    ("Office", "Furniture and supplies for the (home) office"),
    ("Sports & Outdoors", "Fitness gear and outdoor equipment"),
    ("Books", None),
    ("Toys & Games", "Board games, puzzles and toys"),
]

# (category, name, 2023-2024 list price, active); a leading "*" marks a discontinued product.
PRODUCTS = """
Audio|Wireless Earbuds Pro|129.99;Over-Ear Noise-Cancelling Headphones|249.00;Bluetooth Speaker Mini|39.99
Audio|Soundbar 2.1|199.00;Studio Monitor Headphones|149.00;*Portable FM Radio|29.99
Computers|14-inch Ultrabook|1099.00;15-inch Laptop|849.00;Mechanical Keyboard|89.99;Wireless Mouse|24.99
Computers|27-inch 4K Monitor|329.00;USB-C Docking Station|159.00;External SSD 1TB|109.99;HD Webcam|69.99
Phones & Tablets|Smartphone X|799.00;Smartphone Lite|399.00;10-inch Tablet|329.00
Phones & Tablets|Tablet Keyboard Cover|79.00;65W Fast Charger|34.99;Silicone Phone Case|19.99
Home & Kitchen|Espresso Machine|349.00;Electric Kettle|44.99;High-Speed Blender|89.00;Air Fryer|119.00
Home & Kitchen|Chef's Knife|59.00;Cast Iron Skillet|39.00;*Two-Slice Toaster|29.00
Office|Ergonomic Office Chair|289.00;Standing Desk|499.00;LED Desk Lamp|49.00
Office|A5 Notebook 3-Pack|14.99;Gel Pens 12-Pack|9.99;*Paper Shredder|79.00
Sports & Outdoors|Yoga Mat|29.99;Adjustable Dumbbells|199.00;Running Shoes|119.00
Sports & Outdoors|Insulated Water Bottle|24.99;Two-Person Camping Tent|159.00;Fitness Tracker|99.00
Books|The Data Warehouse Toolkit|45.00;SQL Performance Explained|39.00;Python Crash Course|35.99
Books|Designing Data-Intensive Applications|49.99;Storytelling with Data|29.99
Toys & Games|Building Blocks Set|59.99;Strategy Board Game|44.99;1000-Piece Jigsaw Puzzle|19.99
Toys & Games|Remote Control Car|69.00;Party Card Game|14.99;*Plush Teddy Bear|24.99
"""
DISCONTINUED_ON = date(2024, 7, 1)  # discontinued products sell only before this day
PRICE_CHANGE_ON = date(2025, 1, 1)  # some list prices went up on this day

# (first, last, title, region, hired_at, manager id); ids are 1-based positions.
EMPLOYEES = [
    ("Margaret", "Chen", "Chief Executive Officer", None, "2019-03-01", None),
    ("David", "Okafor", "VP of Sales", None, "2019-06-17", 1),
    ("Laura", "Schmidt", "Sales Manager", "EMEA", "2020-02-03", 2),
    ("Carlos", "Mendoza", "Sales Manager", "Americas", "2020-04-20", 2),
    ("Hiroshi", "Tanaka", "Sales Manager", "APAC", "2021-01-11", 2),
    ("Emily", "Johnson", "Sales Representative", "Americas", "2020-09-14", 4),
    ("Michael", "Brown", "Sales Representative", "Americas", "2021-05-03", 4),
    ("Sofia", "Rossi", "Sales Representative", "EMEA", "2020-11-02", 3),
    ("Jan", "de Vries", "Sales Representative", "EMEA", "2022-03-07", 3),
    ("Chloé", "Martin", "Sales Representative", "EMEA", "2023-09-18", 3),
    ("Olivia", "Wilson", "Sales Representative", "APAC", "2021-08-23", 5),
    ("Daniel", "Park", "Sales Representative", "Americas", "2024-02-12", 4),
    ("Amelia", "Clarke", "Sales Representative", "APAC", "2024-06-03", 5),
    ("Priya", "Nair", "Operations Manager", None, "2022-10-10", 1),
]


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower().replace(" ", "")


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _at(day: date, rng: random.Random, first_hour: int = 0) -> datetime:
    seconds = rng.randrange(first_hour * 3600, 24 * 3600)
    return datetime(day.year, day.month, day.day) + timedelta(seconds=seconds)


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _names(language: str) -> tuple[list[str], list[str]]:
    first, last = NAMES[language]
    return first.split(), [name.replace("_", " ") for name in last.split()]


def _products() -> list[tuple[str, str, float, bool]]:
    rows = []
    for line in PRODUCTS.strip().splitlines():
        category, rest = line.split("|", 1)
        for item in rest.split(";"):
            name, price = item.split("|")
            rows.append((category, name.lstrip("*"), float(price), not name.startswith("*")))
    return rows


def generate(rng: random.Random) -> dict[str, Sequence[tuple[object, ...]]]:
    """All table rows, in insertion order."""
    tables: dict[str, Sequence[tuple[object, ...]]] = {}
    tables["categories"] = [(i, name, desc) for i, (name, desc) in enumerate(CATEGORIES, 1)]
    category_ids = {name: i for i, (name, _) in enumerate(CATEGORIES, 1)}

    # Products: 2023-2024 price, and 40% of them 3-8% dearer from 2025 on.
    price_before: dict[int, float] = {}
    price_after: dict[int, float] = {}
    popularity: dict[int, float] = {}
    discontinued: list[int] = []
    products = []
    for pid, (category, name, price, active) in enumerate(_products(), 1):
        price_before[pid] = price
        price_after[pid] = round(price * (1 + rng.uniform(0.03, 0.08)), 2) if rng.random() < 0.4 else price
        popularity[pid] = rng.uniform(0.4, 1.6) / price**0.5
        if not active:
            discontinued.append(pid)
        products.append((pid, name, category_ids[category], price_after[pid], int(active)))
    tables["products"] = products

    employees = []
    for eid, (first, last, title, region, hired, manager) in enumerate(EMPLOYEES, 1):
        email = f"{_ascii(first)}.{_ascii(last)}@shop.example.com"
        employees.append((eid, first, last, email, title, region, hired, manager))
    tables["employees"] = employees
    reps = [(e[0], e[5], date.fromisoformat(e[6])) for e in employees if e[4] == "Sales Representative"]

    # Customers: a 2022 cohort, then sign-ups growing over 2023-2025.
    customers, signed_up, activity, region_of, emails = [], [], [], {}, set()
    signup_days = _days(date(2022, 1, 1), date(2025, 12, 20))
    signup_weights = [0.6 if d.year == 2022 else 1 + 0.4 * (d.year - 2023) for d in signup_days]
    for cid, day in enumerate(sorted(rng.choices(signup_days, signup_weights, k=N_CUSTOMERS)), 1):
        country, language, region, _, cities = rng.choices(COUNTRIES, [c[3] for c in COUNTRIES])[0]
        first_names, last_names = _names(language)
        first, last = rng.choice(first_names), rng.choice(last_names)
        local = f"{_ascii(first)}.{_ascii(last)}"
        email = f"{local}@{rng.choice(['example.com', 'example.org', 'example.net'])}"
        n = 2
        while email in emails:
            email, n = f"{local}{n}@{email.split('@')[1]}", n + 1
        emails.add(email)
        created = _at(day, rng)
        city = rng.choice(cities.split("|"))
        customers.append((cid, f"{first} {last}", email, country, city, _ts(created)))
        signed_up.append((created, cid))
        activity.append(min(rng.paretovariate(1.3), 8.0))
        region_of[cid] = region
    tables["customers"] = customers

    # Order days: growth over the years, a Black Friday / Christmas peak, quieter January.
    season = {1: 0.8, 2: 0.85, 11: 1.5, 12: 1.8}
    days = _days(FIRST_DAY, LAST_DAY)
    weights = [(1 + 0.35 * (d.year - 2023)) * season.get(d.month, 1.0) for d in days]
    orders: list[tuple[int, int, int, str, str, str | None]] = []
    items: list[tuple[int, int, int, float, float]] = []
    payments: list[tuple[int, int, str, float, str]] = []
    snapshot = datetime(LAST_DAY.year, LAST_DAY.month, LAST_DAY.day, 23, 59, 59)
    for oid, day in enumerate(sorted(rng.choices(days, weights, k=N_ORDERS)), 1):
        ordered = _at(day, rng, first_hour=6)
        eligible = [i for i, (created, _) in enumerate(signed_up) if created < ordered]
        cid = signed_up[rng.choices(eligible, [activity[i] for i in eligible])[0]][1]
        rep = rng.choice([r for r, region, hired in reps if region == region_of[cid] and hired <= day])

        age = (LAST_DAY - day).days
        if age <= 2:
            status = rng.choices(["pending", "processing", "cancelled"], [5, 4, 1])[0]
        elif age <= 7:
            status = rng.choices(["processing", "shipped", "cancelled"], [2, 7, 1])[0]
        elif age <= 14:
            status = rng.choices(["shipped", "delivered", "cancelled"], [4, 5, 1])[0]
        else:
            status = rng.choices(["delivered", "cancelled"], [95, 5])[0]
        shipped = None
        if status in ("shipped", "delivered"):
            delay = timedelta(days=rng.randint(1, 3), hours=rng.randint(1, 20))
            shipped = _ts(min(ordered + delay, snapshot))
        orders.append((oid, cid, rep, status, _ts(ordered), shipped))

        # Lines: 1-5 distinct products, cheaper ones more often; deeper discounts in November.
        sellable = [p for p in popularity if day < DISCONTINUED_ON or p not in discontinued]
        count = rng.choices([1, 2, 3, 4, 5], [25, 30, 22, 15, 8])[0]
        chosen: list[int] = []
        while len(chosen) < count:
            pid = rng.choices(sellable, [popularity[p] for p in sellable])[0]
            if pid not in chosen:
                chosen.append(pid)
        weights = [50, 15, 20, 10, 5] if day.month == 11 else [85, 6, 6, 2, 1]
        lines: list[tuple[int, int, float, int]] = []  # product, quantity, price, discount in %
        for pid in sorted(chosen):
            price = price_after[pid] if day >= PRICE_CHANGE_ON else price_before[pid]
            quantity = rng.choices([1, 2, 3, 4], [70, 20, 7, 3])[0]
            lines.append((pid, quantity, price, rng.choices([0, 5, 10, 15, 20], weights)[0]))
        # The order total in 1/100 cent, exactly. A total ending in exactly half a cent could round
        # either way in floating point (Python and SQLite may disagree): drop a discount until none
        # does, so ROUND(SUM(quantity * unit_price * (1 - discount)), 2) always equals the payments.
        while (units := sum(q * round(p * 100) * (100 - d) for _, q, p, d in lines)) % 100 == 50:
            k = max(n for n, line in enumerate(lines) if line[3])
            lines[k] = (lines[k][0], lines[k][1], lines[k][2], 0)
        items.extend((oid, pid, q, p, d / 100) for pid, q, p, d in lines)

        # Payments once the order is processing or later; a few orders part-paid by gift card.
        if status not in ("pending", "cancelled"):
            cents = (units + 50) // 100
            paid = ordered + timedelta(minutes=rng.randint(1, 30))
            method = rng.choices(["card", "paypal", "bank_transfer"], [65, 25, 10])[0]
            if cents > 8000 and rng.random() < 0.07:
                gift = rng.choice([2500, 5000])
                payments.append((len(payments) + 1, oid, "gift_card", gift / 100, _ts(paid)))
                cents -= gift
            if method == "bank_transfer":
                paid = min(paid + timedelta(hours=rng.randint(4, 40)), snapshot)
            payments.append((len(payments) + 1, oid, method, cents / 100, _ts(paid)))
    tables["orders"], tables["order_items"], tables["payments"] = orders, items, payments
    return tables


def build(path: Path) -> None:
    """Write the demo database to `path` (replaced atomically if it exists)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    tables = generate(random.Random(SEED))  # noqa: S311 - reproducible demo data, not security
    conn = sqlite3.connect(tmp)
    try:
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA page_size = 4096")
        with conn:
            for statement in SCHEMA:
                conn.execute(statement)
            for table, rows in tables.items():
                marks = ", ".join("?" * len(rows[0]))
                conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        if conn.execute("PRAGMA foreign_key_check").fetchall():
            raise RuntimeError("demo data breaks a foreign key")
        conn.execute("VACUUM")
    finally:
        conn.close()
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0]) if args else Path(__file__).with_name("demo.db")
    build(target)
    print(f"wrote {target} ({target.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
