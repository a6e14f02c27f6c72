"""SQLite schema, applied idempotently at start-up.

Each version's JSON is stored once, in ``history`` (a rowid table: bodies of a few KB pack well
there, unlike in a WITHOUT ROWID table where they spill into overflow pages); ``resources`` is a
small clustered index from (type, id) to the current version's history row.
"""

SCHEMA_VERSION = 7  # PRAGMA user_version

_TYPE_COUNTS = """CREATE TABLE IF NOT EXISTS type_counts (
        type TEXT PRIMARY KEY,
        n INTEGER NOT NULL
    ) WITHOUT ROWID"""

#: what takes a database of schema N (the key) to N + 1, run in the start-up transaction; the
#: statements of the current schema (below and ``index_tables.schema()``) run afterwards
MIGRATIONS: dict[int, tuple[str, ...]] = {
    # 5: the date value index is keyed by the entry's span bucket before ``low`` (date ranges
    # become one narrow seek per bucket, see compile.date_entry); created by the schema below
    4: ("DROP INDEX IF EXISTS idx_date_value",),
    # 6: current resources per type, for the search planner (plan.py); counted once here
    5: (_TYPE_COUNTS,
        "INSERT OR REPLACE INTO type_counts (type, n)"
        " SELECT type, count(*) FROM resources WHERE alive = 1 GROUP BY type"),
    # 7: the audit log's ``what`` index leaves out the events whose ``what`` is their own patient
    # (audit_log.WHAT_INDEXED); created again by audit_log.SCHEMA
    6: ("DROP INDEX IF EXISTS audit_by_what",),
}

STATEMENTS = (
    # The number of current resources per type (the search planner's statistics, plan.py).
    _TYPE_COUNTS,
    # Every version ever written, the current one included (append-only); body NULL: a deletion.
    """CREATE TABLE IF NOT EXISTS history (
        hid INTEGER PRIMARY KEY,
        type TEXT NOT NULL,
        id TEXT NOT NULL,
        version INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        method TEXT NOT NULL,
        body BLOB,
        UNIQUE (type, id, version)
    )""",
    "CREATE INDEX IF NOT EXISTS history_by_ts ON history (ts, type, id, version)",
    "CREATE INDEX IF NOT EXISTS history_by_type_ts ON history (type, ts, id, version)",
    # The current version of each resource; alive = 0 once deleted.
    """CREATE TABLE IF NOT EXISTS resources (
        type TEXT NOT NULL,
        id TEXT NOT NULL,
        version INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        hid INTEGER NOT NULL,
        alive INTEGER NOT NULL,
        PRIMARY KEY (type, id)
    ) WITHOUT ROWID""",
    # Unique keys held by current resources (the health-card identifiers of active Patients).
    """CREATE TABLE IF NOT EXISTS claims (
        key TEXT PRIMARY KEY,
        type TEXT NOT NULL,
        id TEXT NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS claims_by_owner ON claims (type, id)",
    """CREATE TABLE IF NOT EXISTS server_meta (
        key TEXT PRIMARY KEY,
        value BLOB NOT NULL
    ) WITHOUT ROWID""",
    # Small shared state (OAuth clients, hashed tokens, assertion jti): see sqlite/registry.py.
    # Created if missing, so databases of this schema version written before it still open.
    """CREATE TABLE IF NOT EXISTS registry (
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        value BLOB NOT NULL,
        expires INTEGER,
        PRIMARY KEY (kind, key)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS registry_by_expiry ON registry (expires) WHERE expires IS NOT NULL",
)
