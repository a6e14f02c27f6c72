"""SQLite schema, applied idempotently at start-up."""

SCHEMA_VERSION = 1

STATEMENTS = (
    # The current version of each resource; body NULL means deleted.
    """CREATE TABLE IF NOT EXISTS resources (
        type TEXT NOT NULL,
        id TEXT NOT NULL,
        version INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        method TEXT NOT NULL,
        body BLOB,
        PRIMARY KEY (type, id)
    ) WITHOUT ROWID""",
    # Every version ever written, the current one included (append-only).
    """CREATE TABLE IF NOT EXISTS history (
        type TEXT NOT NULL,
        id TEXT NOT NULL,
        version INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        method TEXT NOT NULL,
        body BLOB,
        PRIMARY KEY (type, id, version)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS history_by_ts ON history (ts, type, id, version)",
    "CREATE INDEX IF NOT EXISTS history_by_type_ts ON history (type, ts, id, version)",
    """CREATE TABLE IF NOT EXISTS server_meta (
        key TEXT PRIMARY KEY,
        value BLOB NOT NULL
    ) WITHOUT ROWID""",
)
