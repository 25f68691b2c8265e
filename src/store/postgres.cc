// The key store over the server's PostgreSQL database (libpq).
#include "store/postgres.h"

#include <charconv>
#include <cstdlib>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>
#include <map>

#include <botan/mem_ops.h>
#include <fmt/format.h>
#include "store/libpq.h"

#include "config/config.h"
#include "store/sql_shape.h"
#include "util/error.h"

namespace ik::store {
namespace {

// Every infra-keys writer takes this transaction-scoped advisory lock first, so two of them never
// change the keys of one database at once. It is the first 8 bytes of SHA-256("infra-keys") read
// as a big-endian signed integer (0x014264995533649b); documented, never to change.
constexpr int64_t advisory_lock_key = 90745552223036571;
constexpr const char* application_name = "infra-keys";
constexpr const char* connect_timeout_seconds = "10";
constexpr int scan_fetch_rows = 10'000;
constexpr int rewrite_page_rows = 500;
// How long the dbkey row lock may be waited for: a session holding it longer is a busy writer.
constexpr const char* row_lock_timeout = "2s";

const char* const key_table_ddl =
    "CREATE TABLE IF NOT EXISTS encryption_keys (id bigint, created_at timestamptz, updated_at timestamptz, "
    "deleted_at timestamptz, key_id bigint, name text, encrypted bytea, algorithm text, root_key_id text, "
    "PRIMARY KEY (id));\n"
    "CREATE UNIQUE INDEX IF NOT EXISTS idx_encryption_keys_key_id ON encryption_keys(key_id);";

std::string timestamp_sql(const char* column) {
    return fmt::format("coalesce(to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00:00', '')", column);
}

// pid, user, application and client address of pg_stat_activity `a`, for session_of.
const std::string session_columns =
    "CAST(a.pid AS TEXT), coalesce(a.usename::text, ''), coalesce(a.application_name, ''), "
    "coalesce(host(a.client_addr), 'local socket')";

const std::string key_columns = "CAST(id AS TEXT), CAST(key_id AS TEXT), name, encrypted, algorithm, root_key_id, " +
                                timestamp_sql("created_at") + ", " + timestamp_sql("updated_at");

// libpq messages do not normally contain the password, but a conninfo echoed back might.
std::string scrubbed(std::string message, std::string_view password) {
    for (auto& c : message)
        if (c == '\n' || c == '\t') c = ' ';
    while (!message.empty() && message.back() == ' ') message.pop_back();
    if (!password.empty())
        for (size_t at; (at = message.find(password)) != std::string::npos;) message.replace(at, password.size(), "***");
    for (size_t at = 0; (at = message.find("password=", at)) != std::string::npos;) {
        size_t end = message.find(' ', at);
        message.replace(at + 9, (end == std::string::npos ? message.size() : end) - at - 9, "***");
        at += 12;
    }
    // postgresql://user:secret@host
    for (size_t at = 0; (at = message.find("://", at)) != std::string::npos;) {
        size_t end = message.find_first_of("@ /", at + 3);
        size_t colon = message.find(':', at + 3);
        if (end != std::string::npos && message[end] == '@' && colon < end)
            message.replace(colon + 1, end - colon - 1, "***");
        at += 3;
    }
    return message;
}

std::string param_value(const ConnectionParams& params, const std::string& key) {
    std::string value;
    for (const auto& [k, v] : params)
        if (k == key) value = v;
    return value;
}

std::string env_or(const char* name, std::string fallback) {
    const char* v = std::getenv(name);
    return v && *v ? v : fallback;
}

// host:port/dbname as far as known before connecting (libpq's defaults filled in).
std::string target_of(const ConnectionParams& params) {
    std::string host = param_value(params, "host");
    if (host.empty()) host = param_value(params, "hostaddr");
    std::string user = param_value(params, "user");
    std::string db = param_value(params, "dbname");
    if (db.empty()) db = env_or("PGDATABASE", user.empty() ? env_or("PGUSER", "") : user);
    std::string port = param_value(params, "port");
    return fmt::format("{}:{}/{}", host.empty() ? env_or("PGHOST", "localhost") : host,
                       port.empty() ? env_or("PGPORT", "5432") : port, db);
}

// A conninfo string or URI as keyword/value pairs, without connecting.
ConnectionParams parse_conninfo(const std::string& conninfo, std::string_view what) {
    char* error = nullptr;
    PQconninfoOption* options = libpq().PQconninfoParse(conninfo.c_str(), &error);
    if (!options) {
        std::string message = error ? scrubbed(error, "") : "out of memory";
        libpq().PQfreemem(error);
        throw Error(ExitCode::usage, fmt::format("{} is not a valid PostgreSQL connection string: {}", what, message));
    }
    ConnectionParams params;
    for (auto* o = options; o->keyword; ++o)
        if (o->val) params.emplace_back(o->keyword, o->val);
    libpq().PQconninfoFree(options);
    return params;
}

struct Param {
    std::string value;
    bool binary = false;  // PostgreSQL's binary format (bytea as raw bytes, BinaryArray); else text
    bool null = false;

    static Param text(std::string v) { return {std::move(v), false, false}; }
    static Param bytes(std::string_view v) { return {std::string(v), true, false}; }
    static Param number(int64_t v) { return {std::to_string(v), false, false}; }
    static Param null_value() { return {{}, false, true}; }
};

class Result {
public:
    explicit Result(PGresult* r) : r_(r) {}
    Result(Result&& o) noexcept : r_(std::exchange(o.r_, nullptr)) {}
    Result(const Result&) = delete;
    ~Result() { libpq().PQclear(r_); }

    int rows() const { return libpq().PQntuples(r_); }
    bool null(int row, int col) const { return libpq().PQgetisnull(r_, row, col); }
    // Results are in binary format: text and bytea come back as their raw bytes.
    std::string_view view(int row, int col) const {
        return {libpq().PQgetvalue(r_, row, col), static_cast<size_t>(libpq().PQgetlength(r_, row, col))};
    }
    std::string text(int row, int col) const { return std::string(view(row, col)); }
    int64_t number(int row, int col) const {
        auto v = view(row, col);
        int64_t n = 0;
        std::from_chars(v.data(), v.data() + v.size(), n);
        return n;
    }
    bool boolean(int row, int col) const { return view(row, col) == std::string_view("\x01", 1); }
    PGresult* get() const { return r_; }

private:
    PGresult* r_;
};

// "session 345 of user infra from 10.0.0.5 (infra-keys)", from the session_columns of `row`.
std::string session_of(const Result& r, int row) {
    std::string app = r.text(row, 2);
    return fmt::format("session {} of user {} from {}{}", r.text(row, 0), r.text(row, 1), r.text(row, 3),
                       app.empty() ? "" : " (" + app + ")");
}

class Connection {
public:
    Connection(const ConnectionParams& params, bool expand_dbname, const std::string& target)
        : target_(target), password_(secret_of(params)) {
        std::vector<const char*> keys, values;
        for (const auto& [k, v] : params) {
            keys.push_back(k.c_str());
            values.push_back(v.c_str());
        }
        keys.push_back(nullptr);
        values.push_back(nullptr);
        conn_ = libpq().PQconnectdbParams(keys.data(), values.data(), expand_dbname ? 1 : 0);
        if (!conn_) fail(ExitCode::database, "cannot connect to postgres {}: out of memory", target_);
        if (libpq().PQstatus(conn_) != CONNECTION_OK) {
            std::string message = scrub(libpq().PQerrorMessage(conn_));
            libpq().PQfinish(conn_);
            fail(ExitCode::database, "cannot connect to postgres {}: {}", target_, message);
        }
        const char* host = libpq().PQhost(conn_);
        target_ = fmt::format("{}:{}/{}", host && *host ? host : "localhost", libpq().PQport(conn_), libpq().PQdb(conn_));
    }
    Connection(const Connection&) = delete;
    ~Connection() {
        libpq().PQfinish(conn_);
        Botan::secure_scrub_memory(password_.data(), password_.size());
    }

    const std::string& target() const { return target_; }
    PGTransactionStatusType transaction_status() const { return libpq().PQtransactionStatus(conn_); }
    bool in_transaction() const { return transaction_status() != PQTRANS_IDLE; }

    Result exec(std::string_view what, const std::string& sql, const std::vector<Param>& params = {}) {
        return run(what, params, [&](const char* const* values, const int* lengths, const int* formats) {
            return libpq().PQexecParams(conn_, sql.c_str(), static_cast<int>(params.size()), nullptr, values, lengths,
                                        formats, /*binary results*/ 1);
        });
    }

    // A statement run many times in a row: planned once (the server keeps a generic plan after a
    // few runs), where exec() would plan it again on every run.
    void prepare(std::string_view what, const std::string& name, const std::string& sql) {
        bool was_in_transaction = in_transaction();
        Result r(libpq().PQprepare(conn_, name.c_str(), sql.c_str(), 0, nullptr));
        check(what, r, was_in_transaction);
    }
    Result exec_prepared(std::string_view what, const std::string& name, const std::vector<Param>& params) {
        return run(what, params, [&](const char* const* values, const int* lengths, const int* formats) {
            return libpq().PQexecPrepared(conn_, name.c_str(), static_cast<int>(params.size()), values, lengths,
                                          formats, /*binary results*/ 1);
        });
    }

    // Several statements in one round trip (DDL); no parameters.
    void exec_script(std::string_view what, const std::string& sql) {
        bool was_in_transaction = in_transaction();
        Result r(libpq().PQexec(conn_, sql.c_str()));
        check(what, r, was_in_transaction);
    }

    // Best effort, for destructors and error paths: never throws.
    void rollback_quietly() noexcept {
        if (libpq().PQstatus(conn_) == CONNECTION_OK && in_transaction()) libpq().PQclear(libpq().PQexec(conn_, "ROLLBACK"));
    }
    void exec_quietly(const char* sql) noexcept {
        if (libpq().PQstatus(conn_) == CONNECTION_OK) libpq().PQclear(libpq().PQexec(conn_, sql));
    }

    [[noreturn]] void refuse(std::string message, std::string hint = {}) {
        throw Error(ExitCode::refused, std::move(message), std::move(hint));
    }

private:
    static std::string secret_of(const ConnectionParams& params) { return param_value(params, "password"); }

    template <typename Send>
    Result run(std::string_view what, const std::vector<Param>& params, Send send) {
        std::vector<const char*> values;
        std::vector<int> lengths, formats;
        for (const auto& p : params) {
            values.push_back(p.null ? nullptr : p.value.c_str());
            lengths.push_back(static_cast<int>(p.value.size()));
            formats.push_back(p.binary ? 1 : 0);
        }
        bool was_in_transaction = in_transaction();
        Result r(send(values.data(), lengths.data(), formats.data()));
        check(what, r, was_in_transaction);
        return r;
    }
    std::string scrub(const char* message) const { return scrubbed(message ? message : "", password_); }

    void check(std::string_view what, const Result& r, bool was_in_transaction) {
        auto status = libpq().PQresultStatus(r.get());
        if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return;
        std::string message = scrub(r.get() ? libpq().PQresultErrorMessage(r.get()) : libpq().PQerrorMessage(conn_));
        if (message.empty()) message = scrub(libpq().PQerrorMessage(conn_));
        if (libpq().PQstatus(conn_) == CONNECTION_BAD)
            fail(ExitCode::database, "postgres {}: lost the connection while {}{}: {}", target_, what,
                 was_in_transaction ? "; nothing was committed" : "", message);
        const char* state = r.get() ? libpq().PQresultErrorField(r.get(), PG_DIAG_SQLSTATE) : nullptr;
        if (state && std::string_view(state) == "55P03")  // lock_not_available: lock_timeout expired
            refuse(fmt::format("postgres {}: {}: a lock is held by another session; is the Infra server or "
                               "another infra-keys writing?", target_, what));
        fail(ExitCode::database, "postgres {}: {}: {}", target_, what, message);
    }

    PGconn* conn_ = nullptr;
    std::string target_;
    std::string password_;  // kept only to scrub it out of messages
};

// What the store and its transaction both need: the connection, table shapes and key rows.
class Database {
public:
    Database(const ConnectionParams& params, bool expand_dbname, const std::string& target)
        : conn_(params, expand_dbname, target) {}

    Connection& conn() { return conn_; }
    const std::string& target() const { return conn_.target(); }
    // A name not used before on this connection (for prepared statements).
    std::string unique_name(std::string_view prefix) { return fmt::format("{}_{}", prefix, ++names_); }

    bool has_table(const std::string& table) {
        auto r = conn_.exec("reading the schema", "SELECT to_regclass($1) IS NOT NULL", {Param::text(sql_name(table))});
        return r.boolean(0, 0);
    }

    void require_key_table() {
        if (!has_table("encryption_keys"))
            fail(ExitCode::database, "postgres {} has no encryption_keys table; is this an Infra database?", target());
    }

    std::vector<KeyRow> live_keys(const std::optional<std::string>& name) {
        require_key_table();
        std::string sql = "SELECT " + key_columns + " FROM encryption_keys WHERE deleted_at IS NULL";
        std::vector<Param> params;
        if (name) {
            sql += " AND name = $1";
            params.push_back(Param::text(*name));
        }
        auto r = conn_.exec("reading encryption_keys", sql + " ORDER BY id", params);
        std::vector<KeyRow> rows;
        for (int i = 0; i < r.rows(); ++i) {
            KeyRow row;
            row.id = r.number(i, 0);
            row.key_id = r.number(i, 1);
            row.name = r.text(i, 2);
            auto encrypted = r.view(i, 3);
            row.encrypted.assign(encrypted.begin(), encrypted.end());
            row.algorithm = r.text(i, 4);
            row.root_key_id = r.text(i, 5);
            row.created_at = r.text(i, 6);
            row.updated_at = r.text(i, 7);
            rows.push_back(std::move(row));
        }
        return rows;
    }

    // Columns from pg_attribute and the primary key from pg_index, resolved through search_path
    // exactly as the queries that follow will be.
    const TableShape& shape(const std::string& table) {
        auto found = shapes_.find(table);
        if (found != shapes_.end()) return found->second;
        TableShape shape;
        std::string what = "reading the schema of " + table;
        auto columns = conn_.exec(what,
                                  "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                                  "WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped "
                                  "ORDER BY a.attnum",
                                  {Param::text(sql_name(table))});
        for (int i = 0; i < columns.rows(); ++i) shape.columns.push_back({columns.text(i, 0), columns.text(i, 1)});
        auto key = conn_.exec(what,
                              "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_index i "
                              "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                              "WHERE i.indrelid = to_regclass($1) AND i.indisprimary "
                              "ORDER BY array_position(i.indkey::int2[], a.attnum)",
                              {Param::text(sql_name(table))});
        for (int i = 0; i < key.rows(); ++i) shape.primary_key.push_back({key.text(i, 0), key.text(i, 1)});
        return shapes_.emplace(table, std::move(shape)).first->second;
    }

    std::string row_label(const std::string& table) { return row_label_sql(shape(table), "ctid::text"); }
    std::string row_label(const EncryptedColumn& column) { return row_label(column.table); }
    // ORDER BY for a census or scan of `table`: its row key, or none (ctid order is not stable).
    std::string row_order(const std::string& table) {
        std::string order;
        for (const auto& k : shape(table).row_key()) order += (order.empty() ? " ORDER BY " : ", ") + sql_name(k.name);
        return order;
    }

private:
    Connection conn_;
    std::map<std::string, TableShape> shapes_;
    uint64_t names_ = 0;
};

constexpr uint32_t bytea_oid = 17, text_oid = 25;

// A one-dimensional array in PostgreSQL's binary format (what array_recv reads), element by
// element: no quoting here and no parsing on the server, and bytea travels as its raw bytes.
class BinaryArray {
public:
    explicit BinaryArray(uint32_t element_type) {
        put(1);             // dimensions
        put(0);             // has NULLs, set by param()
        put(element_type);  // checked by the server against the parameter's type
        put(0);             // elements, set by param()
        put(1);             // lower bound
    }
    void add(std::string_view element) {
        put(static_cast<uint32_t>(element.size()));
        data_.append(element);
        ++size_;
    }
    void add_null() {
        put(0xffffffffu);  // length -1
        has_null_ = true;
        ++size_;
    }
    size_t size() const { return size_; }
    // The array as a binary parameter; the builder is spent.
    Param param() {
        patch(4, has_null_ ? 1 : 0);
        patch(12, static_cast<uint32_t>(size_));
        return Param{std::move(data_), true, false};
    }

private:
    void put(uint32_t v) {
        char bytes[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
                         static_cast<char>(v)};
        data_.append(bytes, 4);
    }
    void patch(size_t at, uint32_t v) {
        for (int i = 0; i < 4; ++i) data_[at + i] = static_cast<char>(v >> (24 - 8 * i));
    }

    std::string data_;
    size_t size_ = 0;
    bool has_null_ = false;
};

struct PageUpdate;

class PgTransaction : public Transaction {
public:
    explicit PgTransaction(Database& db) : db_(db) {}
    ~PgTransaction() override {
        if (!done_) db_.conn().rollback_quietly();
    }

    std::optional<KeyRow> live_key(const std::string& name) override { return first_row(db_.live_keys(name)); }

    void insert_key(const KeyRow& row) override {
        db_.conn().exec(fmt::format("inserting encryption_keys row {}", row.id),
                        "INSERT INTO encryption_keys (id, created_at, updated_at, deleted_at, key_id, name, encrypted, "
                        "algorithm, root_key_id) VALUES ($1::bigint, $2::timestamptz, $3::timestamptz, NULL, "
                        "$4::bigint, $5::text, $6::bytea, $7::text, $8::text)",
                        {Param::number(row.id), timestamp(row.created_at), timestamp(row.updated_at),
                         Param::number(row.key_id), Param::text(row.name), Param::bytes(as_text(row.encrypted)),
                         Param::text(row.algorithm), Param::text(row.root_key_id)});
    }

    void update_key(const KeyRow& row) override {
        auto r = db_.conn().exec(fmt::format("updating encryption_keys row {}", row.id),
                                 "UPDATE encryption_keys SET encrypted = $1::bytea, algorithm = $2::text, "
                                 "root_key_id = $3::text, updated_at = $4::timestamptz WHERE id = $5::bigint",
                                 {Param::bytes(as_text(row.encrypted)), Param::text(row.algorithm),
                                  Param::text(row.root_key_id), timestamp(row.updated_at), Param::number(row.id)});
        if (std::string_view(libpq().PQcmdTuples(r.get())) != "1")
            fail(ExitCode::database, "postgres {}: encryption_keys row {} not found", db_.target(), row.id);
    }

    std::vector<uint64_t> rewrite_values(const std::vector<EncryptedColumn>& columns,
                                         const ValueRewriter& rewrite) override {
        require_one_table(columns);
        return rewrite_table(columns, rewrite);
    }

    void commit() override {
        auto& conn = db_.conn();
        if (conn.transaction_status() != PQTRANS_INTRANS)
            fail(ExitCode::database, "postgres {}: the transaction was aborted; nothing was committed", db_.target());
        auto r = conn.exec("committing", "COMMIT");
        // COMMIT of a transaction the server already aborted reports ROLLBACK, not an error.
        if (std::string_view(libpq().PQcmdStatus(r.get())) != "COMMIT")
            fail(ExitCode::database, "postgres {}: the transaction was rolled back; nothing was committed",
                 db_.target());
        done_ = true;
    }

private:
    static Param timestamp(const std::string& text) { return text.empty() ? Param::null_value() : Param::text(text); }
    std::vector<uint64_t> rewrite_table(const std::vector<EncryptedColumn>& columns, const ValueRewriter& rewrite);
    std::string prepare_update(const std::string& table_name, const std::vector<TableShape::Column>& address,
                               const std::vector<EncryptedColumn>& columns, const std::vector<bool>& set);
    void write_page(PageUpdate& page, const std::string& table_name, const std::vector<TableShape::Column>& address,
                    const std::vector<EncryptedColumn>& columns, std::map<std::vector<bool>, std::string>& updates);

    Database& db_;
    bool done_ = false;
};

// One page's replacements, ready to go back: the addresses of the rows that change and, per
// column, their new values (NULL where that row's value stays).
struct PageUpdate {
    std::vector<BinaryArray> addresses, values;
    std::vector<bool> set;            // the columns the page rewrites
    std::vector<uint64_t> rewritten;  // per column
    size_t rows() const { return addresses.front().size(); }
};

// Runs the rewriter over one fetched page, whose first `address_columns` columns address its rows.
PageUpdate carry_page(const Result& page, size_t address_columns, const std::vector<EncryptedColumn>& columns,
                      const ValueRewriter& rewrite) {
    const int width = static_cast<int>(columns.size()), first_value = static_cast<int>(address_columns);
    PageUpdate out{std::vector<BinaryArray>(address_columns, BinaryArray(text_oid)), {},
                   std::vector<bool>(columns.size(), false), std::vector<uint64_t>(columns.size(), 0)};
    for (const auto& c : columns) out.values.emplace_back(c.blob ? bytea_oid : text_oid);
    std::vector<std::optional<std::string>> row_replacements(columns.size());
    for (int row = 0; row < page.rows(); ++row) {
        bool changed = false;
        for (int i = 0; i < width; ++i) {
            std::string_view text = page.view(row, first_value + i);
            row_replacements[i] = text.empty() ? std::nullopt : rewrite(text);
            if (row_replacements[i]) out.set[i] = changed = true;
        }
        if (!changed) continue;
        for (size_t k = 0; k < address_columns; ++k) out.addresses[k].add(page.view(row, static_cast<int>(k)));
        for (int i = 0; i < width; ++i) {
            if (!row_replacements[i]) {
                out.values[i].add_null();
                continue;
            }
            out.values[i].add(*row_replacements[i]);
            ++out.rewritten[i];
        }
    }
    return out;
}

// The thread that carries the next page over while the server updates this one: one thread for a
// whole rewrite, running one task at a time, since a thread per page left a malloc arena of freed
// pages behind each (8 MiB more peak memory at 1M values). Its destructor lets the task in hand
// finish, so what that task reads must outlive it.
class PageCarrier {
public:
    PageCarrier() : thread_([this] { run(); }) {}
    ~PageCarrier() {
        {
            std::lock_guard lock(mutex_);
            stop_ = true;
        }
        wake_.notify_one();
        thread_.join();
    }
    PageCarrier(const PageCarrier&) = delete;
    PageCarrier& operator=(const PageCarrier&) = delete;

    std::future<PageUpdate> carry(std::function<PageUpdate()> task) {
        std::packaged_task<PageUpdate()> packaged(std::move(task));
        auto done = packaged.get_future();
        {
            std::lock_guard lock(mutex_);
            task_ = std::move(packaged);
        }
        wake_.notify_one();
        return done;
    }

private:
    void run() {
        std::unique_lock lock(mutex_);
        for (;;) {
            wake_.wait(lock, [&] { return task_.valid() || stop_; });
            if (!task_.valid()) return;
            auto task = std::move(task_);
            lock.unlock();
            task();  // an exception goes to the future
            lock.lock();
        }
    }

    std::mutex mutex_;
    std::condition_variable wake_;
    std::packaged_task<PageUpdate()> task_;
    bool stop_ = false;
    std::thread thread_;  // last: it starts once everything it uses is there
};

// One pass over a table. A cursor reads the rows holding a value in any of the columns; each
// page's replacements go back in one UPDATE … FROM unnest(…) that sets every rewritten column of
// a row at once (a column without a replacement gets NULL there and keeps its value). The UPDATE
// names only the columns the page rewrites (one prepared statement per such set of columns), so
// that a column holding no sealed value is never written, nor fires an `UPDATE OF` trigger. Rows
// are addressed by primary key; in a table without one (destination_credentials from v0.20) by
// ctid, exact here: a ctid is not reused while this transaction may still see the row, and a row
// another session moved meanwhile makes the UPDATE miss it, which the row count stops. Locking
// rows as they are read (FOR UPDATE) would write into every row of such a table, those holding no
// sealed value too, and need UPDATE on tables the pass only reads. The cursor reads
// the table as of its start, so the row versions our UPDATEs create are never visited again, and
// the next page can be fetched before this one's UPDATE: while the server runs that UPDATE, a
// second thread runs the rewriter over the next page (one thread at a time still calls it), so
// the rewriter's work (rotate-data-key: open and seal every value) hides behind the server's.
// Memory is two pages; round trips are two per page.
std::vector<uint64_t> PgTransaction::rewrite_table(const std::vector<EncryptedColumn>& columns,
                                                   const ValueRewriter& rewrite) {
    auto& conn = db_.conn();
    const std::string& table_name = columns.front().table;
    std::string what = "rewriting " + table_name;
    std::vector<TableShape::Column> address = db_.shape(table_name).primary_key;
    if (address.empty()) address = {{"ctid", "tid"}};

    // Addresses travel as text and are cast back in the join, so every array is text or bytea.
    std::string selected, any_stored;
    for (const auto& a : address) selected += fmt::format("CAST({} AS TEXT), ", sql_name(a.name));
    for (size_t i = 0; i < columns.size(); ++i) {
        selected += (i ? ", " : "") + sql_name(columns[i].column);
        any_stored += (i ? " OR " : "") + sql_name(columns[i].column) + " IS NOT NULL";
    }
    conn.exec(what, fmt::format("DECLARE infra_keys_rewrite BINARY NO SCROLL CURSOR FOR SELECT {} FROM {} WHERE {}",
                                selected, sql_name(table_name), any_stored));
    std::string fetch = fmt::format("FETCH {} FROM infra_keys_rewrite", rewrite_page_rows);
    std::map<std::vector<bool>, std::string> updates;  // prepared, by the columns they set
    auto carry = [&](const Result& page) { return carry_page(page, address.size(), columns, rewrite); };

    std::vector<uint64_t> rewritten(columns.size(), 0);
    PageUpdate current;
    bool last = false;
    {
        Result first = conn.exec(what, fetch);
        last = first.rows() < rewrite_page_rows;
        current = carry(first);
    }
    std::optional<Result> next;  // before `carrier`, whose destructor waits for the task reading it
    std::optional<PageCarrier> carrier;  // started at the second page: most tables fit in one
    for (;;) {
        std::future<PageUpdate> carried;
        if (!last) {
            next.emplace(conn.exec(what, fetch));
            if (!carrier) carrier.emplace();
            carried = carrier->carry([&] { return carry(*next); });
        }
        write_page(current, table_name, address, columns, updates);
        for (size_t i = 0; i < columns.size(); ++i) rewritten[i] += current.rewritten[i];
        if (last) break;
        current = carried.get();
        last = next->rows() < rewrite_page_rows;
    }
    conn.exec(what, "CLOSE infra_keys_rewrite");
    for (const auto& [set, update] : updates) conn.exec(what, "DEALLOCATE " + update);
    return rewritten;
}

// Sends one page's UPDATE (prepared on first use for its set of columns) and checks every row it
// addressed changed.
void PgTransaction::write_page(PageUpdate& page, const std::string& table_name,
                               const std::vector<TableShape::Column>& address,
                               const std::vector<EncryptedColumn>& columns,
                               std::map<std::vector<bool>, std::string>& updates) {
    const size_t rows = page.rows();
    if (rows == 0) return;
    std::string& update = updates[page.set];
    if (update.empty()) update = prepare_update(table_name, address, columns, page.set);
    std::vector<Param> params;
    for (auto& a : page.addresses) params.push_back(a.param());
    for (size_t i = 0; i < columns.size(); ++i)
        if (page.set[i]) params.push_back(page.values[i].param());
    std::string what = "rewriting " + table_name;
    auto r = db_.conn().exec_prepared(what, update, params);
    if (std::string_view(libpq().PQcmdTuples(r.get())) != std::to_string(rows))
        fail(ExitCode::database, "postgres {}: {}: {} rows changed, expected {}", db_.target(), what,
             libpq().PQcmdTuples(r.get()), rows);
}

// UPDATE … FROM unnest(the addresses, the values of each column of `set`): prepared under a new
// name each time, since prepared statements outlive a transaction and one a failed rewrite left
// behind must never be in the way (rewrite_table frees its own on success).
std::string PgTransaction::prepare_update(const std::string& table_name, const std::vector<TableShape::Column>& address,
                                          const std::vector<EncryptedColumn>& columns, const std::vector<bool>& set) {
    std::string assignments, arrays, names, join;
    for (size_t i = 0; i < address.size(); ++i) {
        arrays += fmt::format("${}::text[], ", i + 1);
        names += fmt::format("a{}, ", i);
        join += fmt::format("{}target.{} = v.a{}::{}", i ? " AND " : "", sql_name(address[i].name), i, address[i].type);
    }
    size_t parameter = address.size();
    for (size_t i = 0; i < columns.size(); ++i) {
        if (!set[i]) continue;
        std::string col = sql_name(columns[i].column), sep = parameter > address.size() ? ", " : "";
        assignments += fmt::format("{}{} = coalesce(v.v{}, target.{})", sep, col, i, col);
        arrays += fmt::format("{}${}::{}[]", sep, ++parameter, columns[i].blob ? "bytea" : "text");
        names += fmt::format("{}v{}", sep, i);
    }
    std::string name = db_.unique_name("infra_keys_rewrite_update");
    db_.conn().prepare("rewriting " + table_name, name,
                       fmt::format("UPDATE {} AS target SET {} FROM unnest({}) AS v({}) WHERE {}", sql_name(table_name),
                                   assignments, arrays, names, join));
    return name;
}

// A read-only snapshot for a scan, unless the scan runs inside an open write transaction; either
// way the scan's cursor is gone afterwards, even when the visitor throws.
class ReadSnapshot {
public:
    explicit ReadSnapshot(Connection& conn) : conn_(conn), own_(!conn.in_transaction()) {
        if (own_) conn_.exec("starting a read-only transaction", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    }
    ~ReadSnapshot() {
        if (finished_) return;
        if (own_)
            conn_.rollback_quietly();
        else
            conn_.exec_quietly("CLOSE infra_keys_scan");
    }
    void finish() {
        conn_.exec("closing the scan", "CLOSE infra_keys_scan");
        if (own_) conn_.exec("ending a read-only transaction", "COMMIT");
        finished_ = true;
    }

private:
    Connection& conn_;
    bool own_;
    bool finished_ = false;
};

class PgStore : public KeyStore {
public:
    PgStore(const ConnectionParams& params, bool expand_dbname, const std::string& target, std::string description)
        : db_(params, expand_dbname, target), description_(std::move(description)) {}

    std::string describe() const override {
        return "postgres " + (description_.empty() ? db_.target() : description_);
    }
    std::string identity() const override { return db_.target(); }

    bool has_key_table() override { return db_.has_table("encryption_keys"); }

    void create_key_table() override { db_.conn().exec_script("creating encryption_keys", key_table_ddl); }

    std::optional<KeyRow> live_key(const std::string& name) override { return first_row(db_.live_keys(name)); }

    std::vector<KeyRow> live_keys() override { return db_.live_keys(std::nullopt); }

    std::vector<EncryptedColumn> encrypted_columns() override {
        return present_encrypted_columns([&](const EncryptedColumn& c) { return db_.shape(c.table).has(c.column); });
    }

    // Columns whose type is a string type (typcategory 'S': text, varchar, char, name, citext…)
    // or bytea, directly or as the base of a domain (of a domain…): those can hold a payload as
    // the server writes one, and come back from a binary cursor as their raw bytes. json and jsonb
    // cannot: a payload is not valid JSON text, so they are not read.
    std::vector<TableColumns> text_columns() override {
        auto r = db_.conn().exec(
            "reading the schema",
            "WITH RECURSIVE columns(relname, attname, attnum, type) AS ("
            "SELECT c.relname, a.attname, a.attnum, a.atttypid FROM pg_class c "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
            "WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relname <> 'encryption_keys' "
            "AND c.relnamespace IN (SELECT oid FROM pg_namespace WHERE nspname = ANY(current_schemas(false))) "
            "AND to_regclass(quote_ident(c.relname)) = c.oid "
            "UNION ALL "
            "SELECT d.relname, d.attname, d.attnum, t.typbasetype FROM columns d "
            "JOIN pg_type t ON t.oid = d.type AND t.typtype = 'd') "
            "SELECT d.relname::text, d.attname::text, d.type = 'bytea'::regtype FROM columns d "
            "JOIN pg_type t ON t.oid = d.type AND t.typtype <> 'd' "
            "WHERE t.typcategory = 'S' OR d.type = 'bytea'::regtype "
            "ORDER BY d.relname, d.attnum");
        std::vector<TableColumns> tables;
        for (int i = 0; i < r.rows(); ++i) {
            std::string table = r.text(i, 0);
            if (tables.empty() || tables.back().table != table) tables.push_back({table, {}});
            tables.back().columns.push_back({table, r.text(i, 1), r.boolean(i, 2)});
        }
        return tables;
    }

    void scan_rows(const TableColumns& table, const RowVisitor& visit) override {
        auto& conn = db_.conn();
        std::string what = "reading " + table.table, columns;
        for (const auto& c : table.columns) columns += ", " + sql_name(c.column);
        ReadSnapshot snapshot(conn);
        // In the table's own order: sorting its rows by key (an external sort of every value, or an
        // index scan jumping across the heap) cost the server more than reading them; the census
        // orders what it names itself.
        conn.exec(what, fmt::format("DECLARE infra_keys_scan BINARY NO SCROLL CURSOR FOR SELECT {}{} FROM {}",
                                    db_.row_label(table.table), columns, sql_name(table.table)));
        const std::string fetch = fmt::format("FETCH {} FROM infra_keys_scan", scan_fetch_rows);
        std::vector<std::string_view> values(table.columns.size());
        for (;;) {
            auto slice = conn.exec(what, fetch);
            for (int row = 0; row < slice.rows(); ++row) {
                for (size_t i = 0; i < values.size(); ++i) values[i] = slice.view(row, static_cast<int>(i) + 1);
                visit(StoredRow{slice.view(row, 0), values});
            }
            if (slice.rows() < scan_fetch_rows) break;
        }
        snapshot.finish();
    }

    uint64_t count_rows(const std::string& table) override {
        auto r = db_.conn().exec("counting " + table,
                                 fmt::format("SELECT CAST(count(*) AS TEXT) FROM {}", sql_name(table)));
        return static_cast<uint64_t>(r.number(0, 0));
    }

    std::optional<std::vector<std::string>> migration_ids() override {
        if (!db_.has_table("migrations")) return std::nullopt;
        auto r = db_.conn().exec("reading migrations", "SELECT CAST(id AS TEXT) FROM migrations WHERE id IS NOT NULL");
        std::vector<std::string> ids;
        for (int i = 0; i < r.rows(); ++i) ids.push_back(r.text(i, 0));
        return ids;
    }

    uint64_t count_values(const EncryptedColumn& column) override {
        auto col = sql_name(column.column);
        auto r = db_.conn().exec("counting " + column.name(),
                                 fmt::format("SELECT CAST(count(*) AS TEXT) FROM {} WHERE {} IS NOT NULL AND "
                                             "octet_length({}) > 0",
                                             sql_name(column.table), col, col));
        return static_cast<uint64_t>(r.number(0, 0));
    }

    // A server-side cursor fetched in slices: constant memory at any table size.
    void scan_values(const EncryptedColumn& column, const ValueVisitor& visit) override {
        auto& conn = db_.conn();
        std::string what = "reading " + column.name();
        auto col = sql_name(column.column);
        ReadSnapshot snapshot(conn);
        conn.exec(what, fmt::format("DECLARE infra_keys_scan BINARY NO SCROLL CURSOR FOR SELECT {} AS row_label, "
                                    "{} AS value FROM {} WHERE {} IS NOT NULL{}",
                                    db_.row_label(column), col, sql_name(column.table), col,
                                    db_.row_order(column.table)));
        const std::string fetch = fmt::format("FETCH {} FROM infra_keys_scan", scan_fetch_rows);
        bool more = true;
        while (more) {
            auto slice = conn.exec(what, fetch);
            for (int row = 0; row < slice.rows() && more; ++row) {
                StoredValue value{slice.view(row, 0), slice.view(row, 1)};
                if (!value.text.empty()) more = visit(value);
            }
            if (slice.rows() < scan_fetch_rows) more = false;
        }
        snapshot.finish();
    }

    std::vector<std::string> other_clients() override {
        auto r = db_.conn().exec(
            "listing other sessions",
            "SELECT " + session_columns + " FROM pg_stat_activity a WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend' "
            "AND coalesce(application_name, '') <> $1::text ORDER BY pid",
            {Param::text(application_name)});
        std::vector<std::string> clients;
        for (int i = 0; i < r.rows(); ++i) clients.push_back(session_of(r, i));
        return clients;
    }

    // A session-level lock on the key every writer's transaction takes too (advisory_lock_key),
    // so that a change keeps it past its commit until its new key is installed.
    std::unique_ptr<ChangeHold> hold_changes() override {
        struct SessionHold : ChangeHold {
            explicit SessionHold(Connection& conn) : conn(conn) {}
            ~SessionHold() override {
                conn.exec_quietly(fmt::format("SELECT pg_advisory_unlock({})", advisory_lock_key).c_str());
            }
            Connection& conn;
        };
        auto& conn = db_.conn();
        auto locked = conn.exec("taking the infra-keys lock", "SELECT pg_try_advisory_lock($1::bigint)",
                                {Param::number(advisory_lock_key)});
        if (!locked.boolean(0, 0)) refuse_held_lock();
        return std::make_unique<SessionHold>(conn);
    }

    std::optional<std::string> change_holder() override {
        // pg_locks splits a bigint advisory key into classid (high half) and objid (low half).
        auto key = static_cast<uint64_t>(advisory_lock_key);
        auto r = db_.conn().exec(
            "finding who holds the infra-keys lock",
            "SELECT " + session_columns + " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND l.classid = $1::oid AND l.objid = $2::oid AND l.pid <> pg_backend_pid() LIMIT 1",
            {Param::text(std::to_string(key >> 32)), Param::text(std::to_string(key & 0xffffffffu))});
        if (r.rows() == 0) return std::nullopt;
        return session_of(r, 0);
    }

    std::unique_ptr<Transaction> begin_exclusive() override {
        auto& conn = db_.conn();
        if (conn.in_transaction()) fail(ExitCode::internal, "postgres {}: a transaction is already open", db_.target());
        conn.exec("starting a write transaction", "BEGIN");
        auto tx = std::make_unique<PgTransaction>(db_);  // rolls back if anything below throws
        auto locked = conn.exec("taking the infra-keys lock",
                                "SELECT pg_try_advisory_xact_lock($1::bigint)", {Param::number(advisory_lock_key)});
        if (!locked.boolean(0, 0)) refuse_held_lock();
        if (db_.has_table("encryption_keys")) {
            // The server writes the dbkey row only when it creates it; locking it keeps a starting
            // server from racing us. Wait briefly, then refuse rather than hang.
            conn.exec("locking the dbkey row", fmt::format("SET LOCAL lock_timeout = '{}'", row_lock_timeout));
            conn.exec("locking the dbkey row",
                      "SELECT id FROM encryption_keys WHERE name = 'dbkey' AND deleted_at IS NULL FOR UPDATE");
            conn.exec("locking the dbkey row", "SET LOCAL lock_timeout TO DEFAULT");
        }
        return tx;
    }

private:
    [[noreturn]] void refuse_held_lock() {
        throw Error(ExitCode::refused,
                    fmt::format("a key change is in progress: {} holds the infra-keys lock on postgres {} (advisory "
                                "lock {})", change_holder().value_or("another session"), db_.target(), advisory_lock_key),
                    "wait for it to finish, then run the command again");
    }

    mutable Database db_;
    std::string description_;
};

std::unique_ptr<KeyStore> connect(ConnectionParams params, bool expand_dbname, const std::string& target,
                                  std::string description) {
    // Defaults first: libpq lets later keywords (and an expanded dbname) override them.
    params.insert(params.begin(), {{"connect_timeout", connect_timeout_seconds}, {"application_name", application_name}});
    return std::make_unique<PgStore>(params, expand_dbname, target, std::move(description));
}

}  // namespace

ConnectionParams connection_params(const config::Config& cfg, const std::string& db_password) {
    ConnectionParams params{{"host", cfg.db_host}};
    if (cfg.db_port > 0) params.emplace_back("port", std::to_string(cfg.db_port));
    if (!cfg.db_name.empty()) params.emplace_back("dbname", cfg.db_name);
    if (!cfg.db_username.empty()) params.emplace_back("user", cfg.db_username);
    // Without one, libpq falls back to PGPASSWORD and ~/.pgpass by itself.
    if (!db_password.empty()) params.emplace_back("password", db_password);
    if (!cfg.db_parameters.empty())
        for (auto& p : parse_conninfo(cfg.db_parameters, "dbParameters")) params.push_back(std::move(p));
    return params;
}

std::unique_ptr<KeyStore> open_postgres(const ConnectionParams& params) {
    return connect(params, /*expand_dbname=*/false, target_of(params), "");
}

std::unique_ptr<KeyStore> open_postgres_connection_string(const std::string& conninfo, const std::string& db_password) {
    auto parsed = parse_conninfo(conninfo, "dbConnectionString");
    // The string's own settings win over dbPassword: libpq applies an expanded dbname where it
    // stands, over the keywords before it.
    ConnectionParams params;
    if (!db_password.empty()) params.emplace_back("password", db_password);
    params.emplace_back("dbname", conninfo);
    return connect(params, /*expand_dbname=*/true, target_of(parsed), "");
}

std::unique_ptr<KeyStore> open_postgres_reached_at(const config::Config& cfg, const std::string& db_password,
                                                   const std::string& db_url) {
    ConnectionParams params;
    if (cfg.db_connection_string.empty()) {
        params = connection_params(cfg, db_password);
    } else {
        if (!db_password.empty()) params.emplace_back("password", db_password);
        for (auto& p : parse_conninfo(cfg.db_connection_string, "dbConnectionString")) params.push_back(std::move(p));
    }
    // libpq takes the last value of a keyword given twice.
    for (auto& p : parse_conninfo(db_url, "the database URL")) params.push_back(std::move(p));
    return open_postgres(params);
}

std::unique_ptr<KeyStore> open_postgres(const std::string& conninfo, const std::string& description) {
    auto parsed = parse_conninfo(conninfo, "the database URL");
    return connect({{"dbname", conninfo}}, /*expand_dbname=*/true, target_of(parsed), description);
}

}  // namespace ik::store
