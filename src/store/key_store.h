// The database as infra-keys sees it: the `encryption_keys` rows and the encrypted columns.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/bytes.h"

namespace ik::config { struct Config; }

namespace ik::store {

// One row of `encryption_keys` (docs/infra-format.md §4).
struct KeyRow {
    int64_t id = 0;
    int64_t key_id = 0;
    std::string name;  // "dbkey" for the db key
    Bytes encrypted;   // the wrapped db key, exactly as stored
    std::string algorithm;
    std::string root_key_id;
    std::string created_at, updated_at;  // as stored; new rows get the server's format
};

// A column whose values are sealed by the db key (docs/infra-format.md §7).
struct EncryptedColumn {
    std::string table;
    std::string column;
    // PostgreSQL: the column is bytea (or a domain over it), so values are written back as bytea,
    // else as text (settings.private_jwk is bytea). SQLite does not need it: a value is written
    // back in the storage class it was read in.
    bool blob = false;
    std::string name() const { return table + "." + column; }
};

// A table and every column of it that can hold a sealed value (docs/infra-format.md §5): what a
// census reads, in one statement per table. SQLite: every column but the rowid alias (any other
// holds text, whatever its declared type); PostgreSQL: every column whose type, or its domain's
// base type, is a string type (text, varchar, char, citext, …) or bytea.
struct TableColumns {
    std::string table;
    std::vector<EncryptedColumn> columns;
};

// One row of a census: how to name it, and its values in the order of TableColumns::columns (a
// NULL, and on SQLite an INTEGER or REAL, reads as empty). The views are valid only inside the callback.
struct StoredRow {
    std::string_view row;
    const std::vector<std::string_view>& values;
};
using RowVisitor = std::function<void(const StoredRow&)>;

// One stored value seen during a scan. The views are valid only inside the callback.
struct StoredValue {
    std::string_view row;  // how to name the row in messages: its id, or its primary key columns
    std::string_view text;  // the sealed base64 text (TEXT or BLOB read as bytes)
};

// Scans call back for each non-empty value; returning false stops the scan.
using ValueVisitor = std::function<bool(const StoredValue&)>;
// Rewrites call back with each non-empty value's text; returning a string replaces the stored value.
// No row label: a rewrite needs none, and building one for every row costs a scan's worth of work.
using ValueRewriter = std::function<std::optional<std::string>(std::string_view text)>;

// Free disk for a write, where it is needed.
struct DiskRoom {
    std::string directory;
    uint64_t needed = 0;     // bytes
    uint64_t available = 0;  // bytes an unprivileged writer may still use there
};

// All writes go through a transaction: nothing is visible until commit(); the destructor rolls
// back an uncommitted one. Holding it excludes every other infra-keys writer (and, on SQLite,
// every other writer at all).
class Transaction {
public:
    virtual ~Transaction() = default;
    virtual std::optional<KeyRow> live_key(const std::string& name) = 0;  // re-read under the lock
    virtual void insert_key(const KeyRow& row) = 0;
    virtual void update_key(const KeyRow& row) = 0;  // by id: encrypted, algorithm, root_key_id, updated_at
    // Visits every non-empty value of `columns` (all of one table), each row once and in no set
    // order, in bounded memory, and writes back the ones the rewriter replaces with ordinary
    // UPDATEs, so the table's triggers fire as for the server's own writes. One UPDATE sets every
    // rewritten column of a row: one new row version per row, not one per column. A value keeps
    // its type: TEXT stays TEXT and BLOB stays BLOB (PostgreSQL: per column.blob). Rows are
    // addressed by primary key, or in a table without one by SQLite's rowid / PostgreSQL's ctid
    // under the transaction's row lock (SELECT … FOR UPDATE), which keeps it exact until commit.
    // Returns the values rewritten per column, in the order of `columns`.
    virtual std::vector<uint64_t> rewrite_values(const std::vector<EncryptedColumn>& columns,
                                                 const ValueRewriter& rewrite) = 0;
    virtual void commit() = 0;
};

// Taken by a key change before it writes anything and kept until it has fully finished (its
// commit and the key install after it), so that another infra-keys sees the change as in progress,
// never as interrupted. The kernel or the server drops it when the process dies.
class ChangeHold {
public:
    virtual ~ChangeHold() = default;
};

class KeyStore {
public:
    virtual ~KeyStore() = default;

    // "sqlite /root/.infra/sqlite3.db" or "postgres db.example.com:5432/infra" (never a password).
    virtual std::string describe() const = 0;
    // Stable identity for backups: the absolute path, or host:port/dbname.
    virtual std::string identity() const = 0;

    virtual bool has_key_table() = 0;
    // Creates `encryption_keys` exactly as the server's migration does (used by `init`).
    virtual void create_key_table() = 0;

    virtual std::optional<KeyRow> live_key(const std::string& name) = 0;  // deleted_at IS NULL
    virtual std::vector<KeyRow> live_keys() = 0;

    // Every table of the server's schema (SQLite: main; PostgreSQL: the tables the connection's
    // search_path resolves unqualified names to) but encryption_keys, with the columns that can
    // hold a sealed value (TableColumns); in table order.
    virtual std::vector<TableColumns> text_columns() = 0;
    // Streams every row of `table` with the values of its columns: one statement (PostgreSQL: one
    // server-side cursor) per table, constant memory, rows in no particular order.
    virtual void scan_rows(const TableColumns& table, const RowVisitor& visit) = 0;
    virtual uint64_t count_rows(const std::string& table) = 0;
    // The ids in the `migrations` table (gormigrate's), or nullopt when there is no such table.
    virtual std::optional<std::vector<std::string>> migration_ids() = 0;

    // The known encrypted columns (docs/infra-format.md §7) that exist in this database.
    virtual std::vector<EncryptedColumn> encrypted_columns() = 0;
    virtual uint64_t count_values(const EncryptedColumn& column) = 0;  // non-empty values
    // Streams non-empty values in constant memory (one statement/cursor, no table in memory).
    virtual void scan_values(const EncryptedColumn& column, const ValueVisitor& visit) = 0;

    // The disk a transaction that rewrites every sealed value needs beside the database, and what
    // there is: SQLite's rollback journal (or WAL) keeps the original of every page the
    // transaction changes, about the size of the database, in its directory. nullopt when it
    // cannot be known from here (PostgreSQL: the disk is the server's).
    virtual std::optional<DiskRoom> room_to_rewrite() { return std::nullopt; }

    // Other clients of this database right now (PostgreSQL sessions), to tell whether the Infra
    // server is running before a key change (docs/infra-format.md §6). SQLite is checked through /proc instead.
    virtual std::vector<std::string> other_clients() { return {}; }

    // The change hold of this database (SQLite: its directory's flock; PostgreSQL: a session
    // advisory lock), at once, or ik::Error(refused) naming its holder.
    virtual std::unique_ptr<ChangeHold> hold_changes() = 0;
    // Who else holds it: "pid 12 (infra-keys) on host db-1", "session 345 of user infra from
    // 10.0.0.5 (infra-keys)"; nullopt when nobody does.
    virtual std::optional<std::string> change_holder() = 0;

    // Starts the write transaction and takes the exclusive lock; throws ik::Error(refused) at
    // once if another infra-keys writer holds it.
    virtual std::unique_ptr<Transaction> begin_exclusive() = 0;
};

// The table/column list both stores check for (docs/infra-format.md §7).
const std::vector<EncryptedColumn>& known_encrypted_columns();
// Those of them for which `has` is true (the database's own schema may lack some), in that order.
std::vector<EncryptedColumn> present_encrypted_columns(const std::function<bool(const EncryptedColumn&)>& has);
// The first of `rows`, if any: a key name has at most one live row.
std::optional<KeyRow> first_row(std::vector<KeyRow> rows);

// What --db-url means: the database instead of the config's, or (--kube-deployment, after a
// `kubectl port-forward`) only where to reach the config's database: its keywords win over the
// config's, whose database name, user and password stay.
enum class DbUrlRole { replaces_config, reaches_config };

// Opens SQLite or PostgreSQL as the config says. `create` allows creating a missing SQLite file
// (init only). `db_url` overrides the config's PostgreSQL fields (--db-url). Throws ik::Error(database).
std::unique_ptr<KeyStore> open(const config::Config& cfg, const std::string& db_password,
                               bool create, const std::optional<std::string>& db_url = std::nullopt,
                               DbUrlRole role = DbUrlRole::replaces_config);

std::unique_ptr<KeyStore> open_sqlite(const std::string& path, bool create);
std::unique_ptr<KeyStore> open_postgres(const std::string& conninfo, const std::string& description);

// The server's timestamp text for created_at/updated_at: "2022-06-09 14:03:11.123456789+00:00".
std::string now_timestamp();

// A timestamp as the server, PostgreSQL or a backup writes it ("2022-06-09 14:03:11.123456789+00:00",
// "…+00", "2026-12-02T12:00:00Z"), as nanoseconds since the epoch in UTC; nullopt for other text.
std::optional<int64_t> parse_timestamp(std::string_view text);

}  // namespace ik::store
