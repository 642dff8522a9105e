-- Named statements of the SQLite engine. Each statement has a `-- name:` line and a
-- one-line description; `database/_sql.py` loads them into a frozen dataclass.
-- Documents hold the current state (no MVCC): one row per live document, plus one row per
-- (index, key) in index_entries. Index keys are order-preserving byte strings (keys.py),
-- so SQLite's memcmp order on BLOBs is Convex's order. Document values are stored as TEXT
-- (the JSON) and read back as BLOB: json1 caches the parse of a TEXT argument, so a pushed-down
-- filter reading several fields of a row parses it once.

-- name: create_schema
-- Tables of the storage engine (idempotent).
CREATE TABLE IF NOT EXISTS owlat_globals (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS owlat_tables (
    name TEXT PRIMARY KEY,
    number INTEGER NOT NULL UNIQUE
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS owlat_indexes (
    index_id INTEGER PRIMARY KEY,
    table_name TEXT NOT NULL,
    name TEXT NOT NULL,
    fields TEXT NOT NULL,
    UNIQUE (table_name, name)
);
CREATE TABLE IF NOT EXISTS owlat_documents (
    id TEXT PRIMARY KEY,
    table_number INTEGER NOT NULL,
    value BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS owlat_index_entries (
    index_id INTEGER NOT NULL,
    key BLOB NOT NULL,
    document_id TEXT NOT NULL,
    PRIMARY KEY (index_id, key)
) WITHOUT ROWID;

-- name: get_global
-- One persisted global integer (e.g. the last commit timestamp).
SELECT value FROM owlat_globals WHERE name = ?;

-- name: set_global
-- Store a global integer.
INSERT INTO owlat_globals (name, value) VALUES (?, ?)
ON CONFLICT (name) DO UPDATE SET value = excluded.value;

-- name: last_ts
-- The stored bound of commit timestamps: at least every committed one (_sqlite_clock.py).
SELECT coalesce((SELECT value FROM owlat_globals WHERE name = 'last_ts'), 0);

-- name: lock_commits
-- Nothing to do: `BEGIN IMMEDIATE` already made this the only writer.
SELECT 1;

-- name: allocate_ts
-- Not used: the writing process draws timestamps in memory (_sqlite_clock.py).
SELECT ? WHERE 0 AND ?;

-- name: record_commit
-- Store a new bound of commit timestamps, by the commit that passes the stored one.
INSERT INTO owlat_globals (name, value) VALUES ('last_ts', ?)
ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value);

-- name: commit
-- Not used: a SQLite commit is COMMIT, with record_commit when it passes the stored bound.
SELECT ? WHERE 0 AND ? AND ?;

-- name: commit_channel
-- SQLite announces nothing: its feed is in-process (commit_feed.py).
SELECT NULL;

-- name: commits_after
-- SQLite keeps no commit log: one process writes the file, and hears its own commits.
SELECT NULL, NULL WHERE 0 AND ? AND ?;

-- name: prune_commits
-- Nothing to prune (no commit log).
SELECT ? WHERE 0;

-- name: list_tables
-- The table catalog: name and table number (the number is part of every id).
SELECT name, number FROM owlat_tables;

-- name: insert_table
-- Register a table under a table number.
INSERT INTO owlat_tables (name, number) VALUES (?, ?);

-- name: list_indexes
-- The index catalog: id, table, name and the JSON list of indexed fields.
SELECT index_id, table_name, name, fields FROM owlat_indexes;

-- name: insert_index
-- Register an index; returns its id.
INSERT INTO owlat_indexes (table_name, name, fields) VALUES (?, ?, ?) RETURNING index_id;

-- name: delete_index
-- Drop an index from the catalog (its entries are removed by delete_index_entries).
DELETE FROM owlat_indexes WHERE index_id = ?;

-- name: delete_index_entries
-- Remove every entry of one index.
DELETE FROM owlat_index_entries WHERE index_id = ?;

-- name: get_document
-- Point read of a live document by id.
SELECT CAST(value AS BLOB) FROM owlat_documents WHERE id = ?;

-- name: insert_documents
-- New documents: run with executemany, once per (id, table_number, value), the value being
-- the encoded JSON including _id and _creationTime.
INSERT INTO owlat_documents (id, table_number, value) VALUES (?, ?, CAST(? AS TEXT));

-- name: update_document
-- Replace the stored value of a live document.
UPDATE owlat_documents SET value = CAST(? AS TEXT) WHERE id = ?;

-- name: delete_document
-- Remove a document.
DELETE FROM owlat_documents WHERE id = ?;

-- name: insert_index_entries
-- Add index entries: run with executemany, once per (index_id, key, document_id).
INSERT INTO owlat_index_entries (index_id, key, document_id) VALUES (?, ?, ?);

-- name: delete_index_keys
-- Remove index entries: run with executemany, once per (index_id, key).
DELETE FROM owlat_index_entries WHERE index_id = ? AND key = ?;

-- name: scan_asc
-- Documents of an index range [low, high) in key order. The primary key (index_id, key)
-- makes this a single b-tree range walk; the join is a primary-key lookup per row.
SELECT e.key, CAST(d.value AS BLOB) FROM owlat_index_entries AS e
JOIN owlat_documents AS d ON d.id = e.document_id
WHERE e.index_id = ? AND e.key >= ? AND e.key < ?
ORDER BY e.key ASC LIMIT ?;

-- name: scan_ranges
-- Every document of one range [low, high) of an index in key order (run once per range).
SELECT e.key, CAST(d.value AS BLOB) FROM owlat_index_entries AS e
JOIN owlat_documents AS d ON d.id = e.document_id
WHERE e.index_id = ? AND e.key >= ? AND e.key < ?
ORDER BY e.key ASC;

-- name: scan_desc
-- The same range in reverse key order.
SELECT e.key, CAST(d.value AS BLOB) FROM owlat_index_entries AS e
JOIN owlat_documents AS d ON d.id = e.document_id
WHERE e.index_id = ? AND e.key >= ? AND e.key < ?
ORDER BY e.key DESC LIMIT ?;

-- name: scan_where_asc
-- scan_asc keeping only rows whose pushed-down filter (pushdown.py) is not FALSE; params:
-- index_id, low, high, the predicate's params, limit. {predicate} is filled in per query.
SELECT e.key, CAST(d.value AS BLOB) FROM owlat_index_entries AS e
JOIN owlat_documents AS d ON d.id = e.document_id
WHERE e.index_id = ? AND e.key >= ? AND e.key < ? AND ({predicate}) IS NOT FALSE
ORDER BY e.key ASC LIMIT ?;

-- name: scan_where_desc
-- The same in reverse key order.
SELECT e.key, CAST(d.value AS BLOB) FROM owlat_index_entries AS e
JOIN owlat_documents AS d ON d.id = e.document_id
WHERE e.index_id = ? AND e.key >= ? AND e.key < ? AND ({predicate}) IS NOT FALSE
ORDER BY e.key DESC LIMIT ?;

-- name: count_where
-- Rows of a range grouped by the predicate's value (1, 0, NULL) in one pass; params: the
-- predicate's params, index_id, low, high.
SELECT r, count(*) FROM (
    SELECT ({predicate}) AS r FROM owlat_index_entries AS e
    JOIN owlat_documents AS d ON d.id = e.document_id
    WHERE e.index_id = ? AND e.key >= ? AND e.key < ?
) GROUP BY r;

-- name: unknown_where
-- The rows of a range where the predicate is NULL (Python decides them).
SELECT e.key, CAST(d.value AS BLOB) FROM owlat_index_entries AS e
JOIN owlat_documents AS d ON d.id = e.document_id
WHERE e.index_id = ? AND e.key >= ? AND e.key < ? AND ({predicate}) IS NULL
ORDER BY e.key ASC;

-- name: count_range
-- The number of entries of an index range (no document is read).
SELECT count(*) FROM owlat_index_entries WHERE index_id = ? AND key >= ? AND key < ?;

-- name: create_catalog_schema
-- Index backfill state (catalog.py), created with create_schema. An index with a row in
-- owlat_index_backfills is maintained by every writer but not yet complete.
CREATE TABLE IF NOT EXISTS owlat_index_backfills (
    index_id INTEGER PRIMARY KEY
);

-- name: allocate_ts_versioned
-- Not used: the writer reads catalog_version when another connection committed.
SELECT ? WHERE 0 AND ?;

-- name: catalog_version
-- The current catalog version (0 until the first catalog change).
SELECT coalesce((SELECT value FROM owlat_globals WHERE name = 'catalog_version'), 0);

-- name: bump_catalog_version
-- A new catalog version, in the transaction that changes the catalog.
INSERT INTO owlat_globals (name, value) VALUES ('catalog_version', 1)
ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value;

-- name: list_backfilling
-- The indexes whose backfill has not finished.
SELECT index_id FROM owlat_index_backfills;

-- name: set_backfilling
-- Mark an index as being backfilled (writers maintain it, queries may not use it yet).
INSERT INTO owlat_index_backfills (index_id) VALUES (?) ON CONFLICT DO NOTHING;

-- name: set_ready
-- Mark an index as complete.
DELETE FROM owlat_index_backfills WHERE index_id = ?;

-- name: documents_after
-- The next batch of a table's documents after an id, in id order (backfill, validation).
SELECT id, CAST(value AS BLOB) FROM owlat_documents
WHERE table_number = ? AND id > ? ORDER BY id LIMIT ?;

-- name: backfill_index_entry
-- Add an index entry unless present (a writer may have added it since the backfill began).
INSERT INTO owlat_index_entries (index_id, key, document_id) VALUES (?, ?, ?)
ON CONFLICT (index_id, key) DO NOTHING;
