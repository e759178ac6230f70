"""kpi_customers: the data-quality figures' rollup, kept by triggers in the changing transaction

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 14:00:00

One row per counted customer (not merged away, not erased), keyed by the
customer's id: tier, whether they
have an e-mail address and a phone number, whether an address is "marked" (a
dot or +tag in the local part, or a capital), and the name and company keys
duplicate suspects are grouped by. Row triggers on customers, identities and
erasures refresh the customer they touch in the same transaction: the row is
recomputed from the raw tables (upserted, or deleted when the customer no
longer counts). On PostgreSQL the refresh first locks the customer row (FOR NO
KEY UPDATE, which FK checks do not wait for), so two transactions changing one
customer's identities refresh one after the other, the second seeing the
first's commit. `hub.kpis.rollup.recompute` states the same rows as one
SELECT; the tests prove trigger-kept and recomputed rows equal.
"""

# The SQL is assembled from this module's own constants (no input reaches it):
# ruff: noqa: S608

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

COLUMNS = "id, tier, has_email, has_phone, marked_email, name_key, company_key"
MARKED = "(i.value LIKE '%.%@%' OR i.value LIKE '%+%@%' OR i.value <> lower(i.value))"


def _rows(where: str) -> str:
    """The rollup's rows of the counted customers matching `where` (on `c`, the customer)."""

    def has(kind: str, extra: str = "") -> str:
        return (
            "EXISTS (SELECT 1 FROM identities i WHERE i.customer_id = c.id "
            f"AND i.kind = '{kind}'{extra})"
        )

    marked = has("email", " AND " + MARKED)
    return f"""SELECT c.id, c.tier, {has("email")}, {has("phone")}, {marked},
        lower(trim(c.name)), lower(trim(coalesce(c.company, '')))
    FROM customers c
    WHERE {where} AND c.merged_into_id IS NULL
        AND NOT EXISTS (SELECT 1 FROM erasures e WHERE e.customer_id = c.id)"""


def _refresh(customer: str) -> str:
    """Statements that make `customer`'s rollup row what the raw tables say."""
    updates = ", ".join(f"{name} = excluded.{name}" for name in COLUMNS.split(", ")[1:])
    return f"""INSERT INTO kpi_customers ({COLUMNS})
    {_rows(f"c.id = {customer}")}
    ON CONFLICT (id) DO UPDATE SET {updates};
    DELETE FROM kpi_customers WHERE id = {customer}
        AND NOT EXISTS ({_rows(f"c.id = {customer}")});"""


# (trigger, table, SQLite event, the customers it refreshes in SQLite's terms)
SQLITE_TRIGGERS = (
    ("kpi_customers_insert", "customers", "INSERT", ("NEW.id",)),
    (
        "kpi_customers_update",
        "customers",
        "UPDATE OF name, company, tier, merged_into_id",
        ("NEW.id",),
    ),
    ("kpi_identities_insert", "identities", "INSERT", ("NEW.customer_id",)),
    ("kpi_identities_delete", "identities", "DELETE", ("OLD.customer_id",)),
    (
        "kpi_identities_update",
        "identities",
        "UPDATE OF customer_id, kind, value",
        ("OLD.customer_id", "NEW.customer_id"),
    ),
    ("kpi_erasures_insert", "erasures", "INSERT", ("NEW.customer_id",)),
    ("kpi_erasures_delete", "erasures", "DELETE", ("OLD.customer_id",)),
    (
        "kpi_erasures_update",
        "erasures",
        "UPDATE OF customer_id",
        ("OLD.customer_id", "NEW.customer_id"),
    ),
)

POSTGRES_FUNCTIONS = (
    f"""
CREATE FUNCTION kpi_refresh_customer(customer bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM customers WHERE id = customer FOR NO KEY UPDATE;
    {_refresh("customer")}
END $$""",
    """
CREATE FUNCTION kpi_customers_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM kpi_refresh_customer(NEW.id);
    RETURN NULL;
END $$""",
    """
-- identities and erasures: the customer before and after, the lower id first (lock order)
CREATE FUNCTION kpi_customer_of_row_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    old_customer bigint := CASE WHEN TG_OP <> 'INSERT' THEN OLD.customer_id END;
    new_customer bigint := CASE WHEN TG_OP <> 'DELETE' THEN NEW.customer_id END;
BEGIN
    IF old_customer IS NOT NULL AND (new_customer IS NULL OR old_customer < new_customer) THEN
        PERFORM kpi_refresh_customer(old_customer);
    END IF;
    IF new_customer IS NOT NULL THEN
        PERFORM kpi_refresh_customer(new_customer);
    END IF;
    IF old_customer IS NOT NULL AND new_customer IS NOT NULL AND old_customer > new_customer THEN
        PERFORM kpi_refresh_customer(old_customer);
    END IF;
    RETURN NULL;
END $$""",
)

POSTGRES_TRIGGERS = (
    (
        "kpi_customers_sync",
        "customers",
        "INSERT OR UPDATE OF name, company, tier, merged_into_id",
        "kpi_customers_changed",
    ),
    (
        "kpi_identities_sync",
        "identities",
        "INSERT OR DELETE OR UPDATE OF customer_id, kind, value",
        "kpi_customer_of_row_changed",
    ),
    (
        "kpi_erasures_sync",
        "erasures",
        "INSERT OR DELETE OR UPDATE OF customer_id",
        "kpi_customer_of_row_changed",
    ),
)
POSTGRES_FUNCTION_NAMES = (
    "kpi_customer_of_row_changed()",
    "kpi_customers_changed()",
    "kpi_refresh_customer(bigint)",
)


def _create_table() -> None:
    op.create_table(
        "kpi_customers",
        sa.Column("id", Id, autoincrement=False, nullable=False),
        sa.Column("tier", sa.String(length=1), nullable=True),
        sa.Column("has_email", sa.Boolean(), nullable=False),
        sa.Column("has_phone", sa.Boolean(), nullable=False),
        sa.Column("marked_email", sa.Boolean(), nullable=False),
        sa.Column("name_key", sa.String(length=200), nullable=False),
        sa.Column("company_key", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["id"],
            ["customers.id"],
            name=op.f("fk_kpi_customers_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kpi_customers")),
    )
    op.create_index(
        op.f("ix_kpi_customers_name_key_company_key_tier_id"),
        "kpi_customers",
        ["name_key", "company_key", "tier", "id"],
    )
    op.create_index(
        op.f("ix_kpi_customers_marked_email_id"),
        "kpi_customers",
        ["marked_email", "id"],
    )


def upgrade() -> None:
    _create_table()
    if op.get_bind().dialect.name == "postgresql":
        for function in POSTGRES_FUNCTIONS:  # one statement each (asyncpg prepares them)
            op.execute(function)
        for name, table, events, function in POSTGRES_TRIGGERS:
            op.execute(
                f"CREATE TRIGGER {name} AFTER {events} ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION {function}()"
            )
    else:
        for name, table, event, customers in SQLITE_TRIGGERS:
            body = "\n".join(_refresh(customer) for customer in customers)
            op.execute(f"CREATE TRIGGER {name} AFTER {event} ON {table} BEGIN\n{body}\nEND")
    # The customers there are now: the same rows the triggers keep from here on.
    op.execute(f"INSERT INTO kpi_customers ({COLUMNS}) {_rows('TRUE')}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, table, _events, _function in POSTGRES_TRIGGERS:
            op.execute(f"DROP TRIGGER {name} ON {table}")
        for function in POSTGRES_FUNCTION_NAMES:
            op.execute(f"DROP FUNCTION {function}")
    else:
        for name, _table, _event, _customers in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")
    op.drop_index(op.f("ix_kpi_customers_marked_email_id"), table_name="kpi_customers")
    op.drop_index(op.f("ix_kpi_customers_name_key_company_key_tier_id"), table_name="kpi_customers")
    op.drop_table("kpi_customers")
