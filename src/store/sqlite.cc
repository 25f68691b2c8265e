// The key store over the server's SQLite file (SQLiteCpp).
#include <filesystem>
#include <limits>
#include <map>
#include <memory>

#include <sys/statvfs.h>

#include <SQLiteCpp/SQLiteCpp.h>
#include <SQLiteCpp/Savepoint.h>
#include <fmt/format.h>
#include <sqlite3.h>

#include "store/key_store.h"
#include "store/sql_shape.h"
#include "util/error.h"
#include "util/files.h"
#include "util/lock_file.h"

namespace ik::store {
namespace {

namespace fs = std::filesystem;

// A running server holds the file briefly for each write; wait that out on ordinary statements.
constexpr int busy_timeout_ms = 10'000;
// Taking the write lock waits only this long: a writer holding it longer is another infra-keys
// or a busy server, and failing at once with a clear message beats hanging.
constexpr int write_lock_timeout_ms = 2'000;
// Rows read per page of a rewrite: bounds memory at any table size.
constexpr int rewrite_page_rows = 500;

const char* const key_table_ddl =
    "CREATE TABLE IF NOT EXISTS encryption_keys (id integer, created_at datetime, updated_at datetime,\n"
    "  deleted_at datetime, key_id integer, name text, encrypted blob, algorithm text,\n"
    "  root_key_id text, PRIMARY KEY (id));\n"
    "CREATE UNIQUE INDEX IF NOT EXISTS idx_encryption_keys_key_id ON encryption_keys(key_id);";

const char* const key_columns = "id, key_id, name, encrypted, algorithm, root_key_id, created_at, updated_at";

std::string_view bytes_of(const SQLite::Column& c) {
    const void* data = c.getBlob();  // TEXT is handed out as its bytes, BLOB as is; no conversion
    return {static_cast<const char*>(data), static_cast<size_t>(c.getBytes())};
}

KeyRow read_key_row(SQLite::Statement& s) {
    KeyRow row;
    row.id = s.getColumn(0).getInt64();
    row.key_id = s.getColumn(1).getInt64();
    row.name = s.getColumn(2).getString();
    auto encrypted = bytes_of(s.getColumn(3));
    row.encrypted.assign(encrypted.begin(), encrypted.end());
    row.algorithm = s.getColumn(4).getString();
    row.root_key_id = s.getColumn(5).getString();
    row.created_at = s.getColumn(6).getString();
    row.updated_at = s.getColumn(7).getString();
    return row;
}

// A value as a sealed payload could be stored: TEXT or BLOB. Any column but the rowid alias can
// hold either, whatever its declared type (a `json` or `datetime` column takes text as it is), so
// the census reads every column and drops integers, reals and NULLs here, by storage class, before
// they are ever turned into text.
std::string_view sealable_bytes(const SQLite::Column& c) {
    int type = c.getType();
    if (type != SQLITE_TEXT && type != SQLITE_BLOB) return {};
    return bytes_of(c);
}

void bind_bytes(SQLite::Statement& s, int index, std::string_view bytes, bool blob) {
    if (blob)
        s.bind(index, bytes.data(), static_cast<int>(bytes.size()));
    else
        s.bind(index, std::string(bytes));
}

// The connection and what both the store and its transactions do with it.
class Database {
public:
    Database(const std::string& path, bool create) : path_(absolute_path(path)), db_(open_file(path_, create)) {
        // The first read waits only as long as a key change waits for the write lock: a program
        // holding the file locked against readers for longer is refused (exit 7), not waited on.
        db_.setBusyTimeout(write_lock_timeout_ms);
        guarded("reading the schema", [&] { db_.execAndGet("SELECT count(*) FROM sqlite_master"); });
        db_.setBusyTimeout(busy_timeout_ms);
    }

    const std::string& path() const { return path_; }
    SQLite::Database& handle() { return db_; }

    // Turns SQLite's exceptions into ik::Error(database) naming the file and what was being done.
    template <typename F>
    auto guarded(std::string_view what, F&& f) -> decltype(f()) {
        try {
            return f();
        } catch (const SQLite::Exception& e) {
            int code = e.getErrorCode() & 0xff;
            if (code == SQLITE_BUSY || code == SQLITE_LOCKED)
                fail(ExitCode::refused, "sqlite {}: {}: another program holds the database locked", path_, what);
            fail(ExitCode::database, "sqlite {}: {}: {}", path_, what, e.what());
        }
    }

    bool has_table(const std::string& table) {
        return guarded("reading the schema", [&] {
            SQLite::Statement s(db_, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?");
            s.bind(1, table);
            return s.executeStep();
        });
    }

    void require_key_table() {
        if (!has_table("encryption_keys"))
            fail(ExitCode::database, "sqlite {} has no encryption_keys table; is this an Infra database?", path_);
    }

    std::vector<KeyRow> live_keys(const std::optional<std::string>& name) {
        require_key_table();
        return guarded("reading encryption_keys", [&] {
            std::string sql = fmt::format("SELECT {} FROM encryption_keys WHERE deleted_at IS NULL", key_columns);
            if (name) sql += " AND name = ?";
            SQLite::Statement s(db_, sql + " ORDER BY id");
            if (name) s.bind(1, *name);
            std::vector<KeyRow> rows;
            while (s.executeStep()) rows.push_back(read_key_row(s));
            return rows;
        });
    }

    const TableShape& shape(const std::string& table) {
        auto found = shapes_.find(table);
        if (found != shapes_.end()) return found->second;
        TableShape shape = guarded("reading the schema of " + table, [&] {
            TableShape t;
            SQLite::Statement s(db_, "SELECT name, type, pk FROM pragma_table_info(?) ORDER BY cid");
            s.bind(1, table);
            std::map<int, TableShape::Column> key;
            while (s.executeStep()) {
                TableShape::Column c{s.getColumn(0).getString(), s.getColumn(1).getString()};
                if (int pk = s.getColumn(2).getInt(); pk > 0) key[pk] = c;
                t.columns.push_back(std::move(c));
            }
            for (auto& [_, c] : key) t.primary_key.push_back(c);
            return t;
        });
        return shapes_.emplace(table, std::move(shape)).first->second;
    }

    std::string row_label(const std::string& table) { return row_label_sql(shape(table), "CAST(rowid AS TEXT)"); }
    std::string row_label(const EncryptedColumn& column) { return row_label(column.table); }

    bool in_transaction() { return sqlite3_get_autocommit(db_.getHandle()) == 0; }

private:
    static std::string absolute_path(const std::string& path) {
        std::error_code ec;
        auto p = fs::weakly_canonical(fs::absolute(path), ec);
        return ec ? fs::absolute(path).lexically_normal().string() : p.string();
    }

    static SQLite::Database open_file(const std::string& path, bool create) {
        if (!create && !fs::exists(path)) fail(ExitCode::database, "database {} does not exist", path);
        if (create) {
            std::error_code ec;
            fs::create_directories(fs::path(path).parent_path(), ec);  // the server creates ~/.infra too
        }
        try {
            // One thread uses the connection (the census's workers get copies of the values), so
            // SQLite's per-call mutex is pure cost: several per row read.
            return SQLite::Database(path, SQLite::OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
                                              (create ? SQLite::OPEN_CREATE : 0));
        } catch (const SQLite::Exception& e) {
            fail(ExitCode::database, "cannot open database {}: {}", path, e.what());
        }
    }

    std::string path_;
    SQLite::Database db_;
    std::map<std::string, TableShape> shapes_;
};

class SqliteTransaction : public Transaction {
public:
    explicit SqliteTransaction(Database& db) : db_(db) {}

    ~SqliteTransaction() override {
        if (done_) return;
        try {
            db_.handle().exec("ROLLBACK");
        } catch (...) {
            // The connection may already have rolled back (e.g. on an I/O error); nothing to undo.
        }
    }

    std::optional<KeyRow> live_key(const std::string& name) override { return first_row(db_.live_keys(name)); }

    void insert_key(const KeyRow& row) override {
        db_.guarded(fmt::format("inserting encryption_keys row {}", row.id), [&] {
            SQLite::Statement s(db_.handle(),
                                "INSERT INTO encryption_keys (id, created_at, updated_at, deleted_at, key_id, name, "
                                "encrypted, algorithm, root_key_id) VALUES (?, ?, ?, NULL, ?, ?, ?, ?, ?)");
            s.bind(1, row.id);
            s.bind(2, row.created_at);
            s.bind(3, row.updated_at);
            s.bind(4, row.key_id);
            s.bind(5, row.name);
            bind_bytes(s, 6, as_text(row.encrypted), /*blob=*/true);  // the server writes BLOB
            s.bind(7, row.algorithm);
            s.bind(8, row.root_key_id);
            s.exec();
        });
    }

    void update_key(const KeyRow& row) override {
        int changed = db_.guarded(fmt::format("updating encryption_keys row {}", row.id), [&] {
            SQLite::Statement s(db_.handle(),
                                "UPDATE encryption_keys SET encrypted = ?, algorithm = ?, root_key_id = ?, "
                                "updated_at = ? WHERE id = ?");
            bind_bytes(s, 1, as_text(row.encrypted), /*blob=*/true);
            s.bind(2, row.algorithm);
            s.bind(3, row.root_key_id);
            s.bind(4, row.updated_at);
            s.bind(5, row.id);
            return s.exec();
        });
        if (changed != 1) fail(ExitCode::database, "sqlite {}: encryption_keys row {} not found", db_.path(), row.id);
    }

    std::vector<uint64_t> rewrite_values(const std::vector<EncryptedColumn>& columns,
                                         const ValueRewriter& rewrite) override {
        require_one_table(columns);
        return db_.guarded("rewriting " + columns.front().table, [&] { return rewrite_pages(columns, rewrite); });
    }

    void commit() override {
        db_.guarded("committing", [&] { db_.handle().exec("COMMIT"); });
        done_ = true;
    }

private:
    // A replacement waiting for the page's read to finish, typed as the value it replaces.
    struct Replacement {
        std::string text;
        bool blob = false;
    };

    // Keyset pagination by rowid: read a page (views valid while the statement is on the row),
    // collect its rows' replacements, finish the read, then write each changed row with one
    // UPDATE. The UPDATE names only the columns the page rewrites (one statement per such set of
    // columns), so that a column holding no sealed value is never written, nor fires an `UPDATE
    // OF` trigger; a row's column without a replacement keeps its value (a NULL parameter:
    // coalesce). Memory is one page of replacements. Each value goes back in the storage class it
    // was read in, whatever the column's declared type: a payload the server wrote as TEXT stays
    // TEXT, one written as BLOB stays BLOB.
    std::vector<uint64_t> rewrite_pages(const std::vector<EncryptedColumn>& columns, const ValueRewriter& rewrite) {
        std::string table = sql_name(columns.front().table), selected, any_stored;
        for (size_t i = 0; i < columns.size(); ++i) {
            std::string col = sql_name(columns[i].column);
            selected += ", " + col;
            any_stored += (i ? " OR " : "") + col + " IS NOT NULL";
        }
        SQLite::Statement page(db_.handle(),
                               fmt::format("SELECT rowid{} FROM {} WHERE rowid > ? AND ({}) ORDER BY rowid LIMIT {}",
                                           selected, table, any_stored, rewrite_page_rows));
        std::map<std::vector<bool>, std::unique_ptr<SQLite::Statement>> updates;  // by the columns they set
        const size_t width = columns.size();
        std::vector<int64_t> rowids;
        std::vector<std::optional<Replacement>> replacements;  // width per row of `rowids`
        std::vector<uint64_t> rewritten(width, 0);
        int64_t last_rowid = std::numeric_limits<int64_t>::min();
        for (;;) {
            page.reset();
            page.bind(1, last_rowid);
            int rows = 0;
            std::vector<bool> set(width, false);  // the columns this page rewrites
            while (page.executeStep()) {
                ++rows;
                last_rowid = page.getColumn(0).getInt64();
                size_t first = replacements.size();
                bool changed = false;
                for (size_t i = 0; i < width; ++i) {
                    auto stored = page.getColumn(static_cast<int>(i + 1));
                    std::string_view text = sealable_bytes(stored);
                    auto replacement = text.empty() ? std::nullopt : rewrite(text);
                    if (replacement) set[i] = changed = true;
                    replacements.push_back(replacement ? std::optional<Replacement>({std::move(*replacement), stored.getType() == SQLITE_BLOB})
                                                       : std::nullopt);
                }
                if (changed) rowids.push_back(last_rowid);
                else replacements.resize(first);
            }
            page.reset();
            if (!rowids.empty()) {
                auto& update = updates[set];
                if (!update) update = prepare_update(table, columns, set);
                write_rows(*update, set, rowids, replacements, rewritten);
            }
            rowids.clear();
            replacements.clear();
            if (rows < rewrite_page_rows) return rewritten;
        }
    }

    // UPDATE `table` SET each column of `set` to its parameter (or, NULL, its value) WHERE rowid = the last one.
    std::unique_ptr<SQLite::Statement> prepare_update(const std::string& table, const std::vector<EncryptedColumn>& columns,
                                                      const std::vector<bool>& set) {
        std::string assignments;
        int parameter = 0;
        for (size_t i = 0; i < columns.size(); ++i) {
            if (!set[i]) continue;
            std::string col = sql_name(columns[i].column);
            assignments += fmt::format("{}{} = coalesce(?{}, {})", parameter ? ", " : "", col, parameter + 1, col);
            ++parameter;
        }
        return std::make_unique<SQLite::Statement>(
            db_.handle(), fmt::format("UPDATE {} SET {} WHERE rowid = ?{}", table, assignments, parameter + 1));
    }

    static void write_rows(SQLite::Statement& update, const std::vector<bool>& set, const std::vector<int64_t>& rowids,
                           const std::vector<std::optional<Replacement>>& replacements, std::vector<uint64_t>& rewritten) {
        const size_t width = set.size();
        for (size_t r = 0; r < rowids.size(); ++r) {
            update.reset();
            update.clearBindings();
            int parameter = 0;
            for (size_t i = 0; i < width; ++i) {
                if (!set[i]) continue;
                ++parameter;
                const auto& replacement = replacements[r * width + i];
                if (!replacement) continue;  // NULL: the column keeps its value
                // No copy: the replacement outlives the statement's use of it (exec below).
                if (replacement->blob)
                    update.bindNoCopy(parameter, replacement->text.data(), static_cast<int>(replacement->text.size()));
                else
                    update.bindNoCopy(parameter, replacement->text);
                ++rewritten[i];
            }
            update.bind(parameter + 1, rowids[r]);
            update.exec();
        }
    }

    Database& db_;
    bool done_ = false;
};

class SqliteStore : public KeyStore {
public:
    SqliteStore(const std::string& path, bool create) : db_(path, create) {}

    std::string describe() const override { return "sqlite " + db_.path(); }
    std::string identity() const override { return db_.path(); }

    bool has_key_table() override { return db_.has_table("encryption_keys"); }

    void create_key_table() override {
        db_.guarded("creating encryption_keys", [&] {
            SQLite::Savepoint savepoint(db_.handle(), "infra_keys_create");
            db_.handle().exec(key_table_ddl);
            savepoint.release();
        });
    }

    std::optional<KeyRow> live_key(const std::string& name) override { return first_row(db_.live_keys(name)); }

    std::vector<KeyRow> live_keys() override { return db_.live_keys(std::nullopt); }

    // Every column but the rowid alias (an INTEGER PRIMARY KEY of a rowid table, the one column
    // that holds integers only): SQLite stores any value in any other column, so a declared type
    // tells nothing about where a payload can be. scan_rows skips non-text values by storage class.
    std::vector<TableColumns> text_columns() override {
        return db_.guarded("reading the schema", [&] {
            SQLite::Statement s(db_.handle(),
                                "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p "
                                "WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
                                "AND m.name <> 'encryption_keys' "
                                "AND NOT (p.pk = 1 AND upper(p.type) = 'INTEGER' "
                                "AND (SELECT count(*) FROM pragma_table_info(m.name) k WHERE k.pk > 0) = 1 "
                                // A rowid alias has no index of its own; a WITHOUT ROWID table's key
                                // (or `INTEGER PRIMARY KEY DESC`) has one, and can hold text.
                                "AND NOT EXISTS (SELECT 1 FROM pragma_index_list(m.name) i WHERE i.origin = 'pk')) "
                                "ORDER BY m.name, p.cid");
            std::vector<TableColumns> tables;
            while (s.executeStep()) {
                std::string table = s.getColumn(0).getString();
                if (tables.empty() || tables.back().table != table) tables.push_back({table, {}});
                tables.back().columns.push_back({table, s.getColumn(1).getString(), false});
            }
            return tables;
        });
    }

    void scan_rows(const TableColumns& table, const RowVisitor& visit) override {
        db_.guarded("reading " + table.table, [&] {
            std::string columns;
            for (const auto& c : table.columns) columns += ", " + sql_name(c.column);
            SQLite::Statement s(db_.handle(), fmt::format("SELECT {}{} FROM {} ORDER BY rowid", db_.row_label(table.table),
                                                          columns, sql_name(table.table)));
            std::vector<std::string_view> values(table.columns.size());
            while (s.executeStep()) {
                for (size_t i = 0; i < values.size(); ++i) values[i] = sealable_bytes(s.getColumn(static_cast<int>(i) + 1));
                visit(StoredRow{bytes_of(s.getColumn(0)), values});
            }
        });
    }

    uint64_t count_rows(const std::string& table) override {
        return db_.guarded("counting " + table, [&] {
            return static_cast<uint64_t>(
                db_.handle().execAndGet(fmt::format("SELECT count(*) FROM {}", sql_name(table))).getInt64());
        });
    }

    std::optional<std::vector<std::string>> migration_ids() override {
        if (!db_.has_table("migrations")) return std::nullopt;
        return db_.guarded("reading migrations", [&] {
            SQLite::Statement s(db_.handle(), "SELECT CAST(id AS TEXT) FROM migrations WHERE id IS NOT NULL");
            std::vector<std::string> ids;
            while (s.executeStep()) ids.push_back(s.getColumn(0).getString());
            return ids;
        });
    }

    std::vector<EncryptedColumn> encrypted_columns() override {
        return present_encrypted_columns([&](const EncryptedColumn& c) { return db_.shape(c.table).has(c.column); });
    }

    uint64_t count_values(const EncryptedColumn& column) override {
        return db_.guarded("counting " + column.name(), [&] {
            auto col = sql_name(column.column);
            SQLite::Statement s(db_.handle(), fmt::format("SELECT count(*) FROM {} WHERE {} IS NOT NULL AND length({}) > 0",
                                                          sql_name(column.table), col, col));
            s.executeStep();
            return static_cast<uint64_t>(s.getColumn(0).getInt64());
        });
    }

    // One statement over the whole column; the views point into SQLite's row buffer, so the
    // per-row cost is the step itself (this is `verify --level full` over millions of rows).
    void scan_values(const EncryptedColumn& column, const ValueVisitor& visit) override {
        db_.guarded("reading " + column.name(), [&] {
            auto col = sql_name(column.column);
            SQLite::Statement s(db_.handle(), fmt::format("SELECT {}, {} FROM {} WHERE {} IS NOT NULL ORDER BY rowid",
                                                          db_.row_label(column), col, sql_name(column.table), col));
            while (s.executeStep()) {
                StoredValue value{bytes_of(s.getColumn(0)), sealable_bytes(s.getColumn(1))};
                if (value.text.empty()) continue;
                if (!visit(value)) return;
            }
        });
    }

    // The database's directory, not the file: SQLite's own locks are fcntl locks on the file, which
    // a flock there must not meet (on NFS the kernel emulates flock with them).
    std::unique_ptr<ChangeHold> hold_changes() override {
        struct DirectoryHold : ChangeHold {
            explicit DirectoryHold(const std::string& dir) : lock(dir) {}
            LockFile lock;
        };
        return std::make_unique<DirectoryHold>(files::directory_of(db_.path()));
    }

    std::optional<std::string> change_holder() override { return LockFile::holder(files::directory_of(db_.path())); }

    // The journal (or WAL) sits beside the database and grows to about the pages rewritten: all
    // of them, for a rewrite of every value, so the database's own size is the estimate.
    std::optional<DiskRoom> room_to_rewrite() override {
        DiskRoom room;
        room.directory = fs::path(db_.path()).parent_path().string();
        std::error_code ec;
        room.needed = fs::file_size(db_.path(), ec);
        struct statvfs disk;
        if (ec || ::statvfs(room.directory.c_str(), &disk) != 0) return std::nullopt;
        room.available = uint64_t{disk.f_bavail} * (disk.f_frsize ? disk.f_frsize : disk.f_bsize);
        return room;
    }

    std::unique_ptr<Transaction> begin_exclusive() override {
        if (db_.in_transaction()) fail(ExitCode::internal, "sqlite {}: a write transaction is already open", db_.path());
        auto& handle = db_.handle();
        // A key change commits, then moves a key file that may live in another directory. In
        // rollback-journal mode the commit is the journal's unlink, which FULL leaves in the
        // directory's page cache: a power cut could bring the journal back and roll the commit
        // back after the key file moved. EXTRA fsyncs the directory before COMMIT returns.
        db_.guarded("setting synchronous=EXTRA", [&] { handle.exec("PRAGMA synchronous = EXTRA"); });
        handle.setBusyTimeout(write_lock_timeout_ms);
        try {
            handle.exec("BEGIN IMMEDIATE");
        } catch (const SQLite::Exception& e) {
            handle.setBusyTimeout(busy_timeout_ms);
            int code = e.getErrorCode() & 0xff;
            if (code == SQLITE_BUSY || code == SQLITE_LOCKED)
                throw Error(ExitCode::refused,
                            fmt::format("another writer holds database {}; is another infra-keys or the Infra server "
                                        "writing?", db_.path()),
                            fmt::format("waited {} s for the write lock; stop the other writer and try again",
                                        write_lock_timeout_ms / 1000));
            fail(ExitCode::database, "sqlite {}: starting a write transaction: {}", db_.path(), e.what());
        }
        // The short wait stays for the whole transaction: in rollback-journal mode the COMMIT
        // needs every reader gone, and another program reading (allowed in by --server-stopped)
        // makes it a refusal (exit 7) in 2 s, not a database error after 10. What was written
        // before the commit is then an interrupted rotation that `--resume` completes.
        return std::make_unique<SqliteTransaction>(db_);
    }

private:
    Database db_;
};

}  // namespace

std::unique_ptr<KeyStore> open_sqlite(const std::string& path, bool create) {
    return std::make_unique<SqliteStore>(path, create);
}

}  // namespace ik::store
