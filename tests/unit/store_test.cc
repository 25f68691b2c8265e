// The key stores against real databases: a SQLite file always, PostgreSQL when INFRA_KEYS_TEST_PG is set
// (tests/pg/with-postgres sets it). Every shared case runs once per backend.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <SQLiteCpp/SQLiteCpp.h>
#include <libpq-fe.h>

#include "config/config.h"
#include "store/key_store.h"
#include "util/error.h"

using namespace ik;
namespace fs = std::filesystem;

namespace {

std::string read_text(const std::string& path) {
    std::ifstream in(path);
    REQUIRE_MESSAGE(in, "cannot read " << path << " (tests run from the project root)");
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

std::optional<std::string> env(const char* name) {
    const char* v = std::getenv(name);
    if (!v || !*v) return std::nullopt;
    return std::string(v);
}

// A fresh database built from the fixture schema, a side connection to seed and inspect it, and
// key stores opened on it. The SQL the tests write is valid on both databases.
class Backend {
public:
    virtual ~Backend() = default;
    virtual std::string name() const = 0;
    virtual std::unique_ptr<store::KeyStore> open() = 0;
    virtual void exec(const std::string& sql) = 0;
    virtual std::optional<std::string> value(const std::string& sql) = 0;  // first column of the first row
    virtual std::string blob_literal(std::string_view bytes) const = 0;
    // The stored value as text, and its storage type ("text" or "blob"), of one cell.
    virtual std::optional<std::string> cell(const std::string& table, const std::string& column, const std::string& where) = 0;
    virtual std::string cell_type(const std::string& table, const std::string& column, const std::string& where) = 0;

    // Everything a rolled-back transaction must leave as it was.
    std::string snapshot() {
        std::string s;
        auto all = [&](const std::string& sql) {
            for (int offset = 0;; ++offset) {
                auto v = value(sql + " LIMIT 1 OFFSET " + std::to_string(offset));
                if (!v) break;
                s += *v + "\n";
            }
        };
        all("SELECT CAST(id AS TEXT) || ':' || name || ':' || coalesce(algorithm, '') FROM encryption_keys ORDER BY id");
        all("SELECT CAST(id AS TEXT) || ':' || coalesce(client_secret, 'NULL') FROM providers ORDER BY id");
        all("SELECT coalesce(access_token, 'NULL') FROM provider_users ORDER BY identity_id, provider_id");
        return s;
    }
};

std::string hex(std::string_view bytes) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (unsigned char c : bytes) {
        out += digits[c >> 4];
        out += digits[c & 15];
    }
    return out;
}

class SqliteBackend : public Backend {
public:
    SqliteBackend() {
        char pattern[] = "/tmp/infra-keys-store-test.XXXXXX";
        REQUIRE(mkdtemp(pattern));
        dir_ = pattern;
        path_ = dir_ + "/sqlite3.db";
        side_ = std::make_unique<SQLite::Database>(path_, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
        side_->exec(read_text("tests/fixtures/infra-schema.sqlite.sql"));
    }
    ~SqliteBackend() override {
        side_.reset();
        fs::remove_all(dir_);
    }
    std::string name() const override { return "sqlite"; }
    const std::string& path() const { return path_; }
    std::unique_ptr<store::KeyStore> open() override { return store::open_sqlite(path_, false); }
    void exec(const std::string& sql) override { side_->exec(sql); }
    std::optional<std::string> value(const std::string& sql) override {
        SQLite::Statement s(*side_, sql);
        if (!s.executeStep() || s.getColumn(0).isNull()) return std::nullopt;
        return s.getColumn(0).getString();
    }
    std::string blob_literal(std::string_view bytes) const override { return "X'" + hex(bytes) + "'"; }
    std::optional<std::string> cell(const std::string& table, const std::string& column, const std::string& where) override {
        return value("SELECT CAST(" + column + " AS TEXT) FROM " + table + " WHERE " + where);
    }
    std::string cell_type(const std::string& table, const std::string& column, const std::string& where) override {
        return value("SELECT typeof(" + column + ") FROM " + table + " WHERE " + where).value_or("none");
    }

private:
    std::string dir_, path_;
    std::unique_ptr<SQLite::Database> side_;
};

class PostgresBackend : public Backend {
public:
    explicit PostgresBackend(std::string conninfo) : conninfo_(std::move(conninfo)) {
        side_ = PQconnectdb(conninfo_.c_str());
        REQUIRE_MESSAGE(PQstatus(side_) == CONNECTION_OK, PQerrorMessage(side_));
        exec("SET client_min_messages = warning; DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;");
        exec(read_text("tests/fixtures/infra-schema.postgres.sql"));
    }
    ~PostgresBackend() override { PQfinish(side_); }
    std::string name() const override { return "postgres"; }
    const std::string& conninfo() const { return conninfo_; }
    std::unique_ptr<store::KeyStore> open() override { return store::open_postgres(conninfo_, ""); }
    void exec(const std::string& sql) override {
        PGresult* r = PQexec(side_, sql.c_str());
        auto status = PQresultStatus(r);
        std::string message = PQresultErrorMessage(r);
        PQclear(r);
        if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) throw std::runtime_error(message + " in: " + sql);
    }
    std::optional<std::string> value(const std::string& sql) override {
        PGresult* r = PQexec(side_, sql.c_str());
        std::optional<std::string> v;
        bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
        std::string message = PQresultErrorMessage(r);
        if (ok && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0)) v = PQgetvalue(r, 0, 0);
        PQclear(r);
        if (!ok) throw std::runtime_error(message + " in: " + sql);
        return v;
    }
    std::string blob_literal(std::string_view bytes) const override { return "decode('" + hex(bytes) + "', 'hex')"; }
    std::optional<std::string> cell(const std::string& table, const std::string& column, const std::string& where) override {
        return value("SELECT convert_from(CAST(" + column + " AS bytea), 'UTF8') FROM " + table + " WHERE " + where);
    }
    std::string cell_type(const std::string& table, const std::string& column, const std::string& where) override {
        auto type = value("SELECT pg_typeof(" + column + ")::text FROM " + table + " WHERE " + where).value_or("none");
        return type == "bytea" ? "blob" : type;
    }

private:
    std::string conninfo_;
    PGconn* side_ = nullptr;
};

// Runs `check` once per available backend, each time on a fresh database.
template <typename F>
void for_each_backend(F&& check) {
    {
        SqliteBackend sqlite;
        INFO("backend: sqlite");
        check(static_cast<Backend&>(sqlite));
    }
    if (auto pg = env("INFRA_KEYS_TEST_PG")) {
        PostgresBackend postgres(*pg);
        INFO("backend: postgres");
        check(static_cast<Backend&>(postgres));
    }
}

store::EncryptedColumn column(const std::string& table, const std::string& name) {
    for (const auto& c : store::known_encrypted_columns())
        if (c.table == table && c.column == name) return c;
    FAIL("unknown column " << table << "." << name);
    return {};
}

std::vector<std::pair<std::string, std::string>> scan_all(store::KeyStore& s, const store::EncryptedColumn& c) {
    std::vector<std::pair<std::string, std::string>> seen;
    s.scan_values(c, [&](const store::StoredValue& v) {
        seen.emplace_back(std::string(v.row), std::string(v.text));
        return true;
    });
    return seen;
}

void insert_key_row(Backend& b, int id, const std::string& name, const std::string& encrypted_literal,
                    const std::string& deleted_at = "NULL") {
    b.exec("INSERT INTO encryption_keys (id, created_at, updated_at, deleted_at, key_id, name, encrypted, algorithm, "
           "root_key_id) VALUES (" + std::to_string(id) + ", '2022-06-09 14:03:11.123456+00:00', "
           "'2022-06-09 14:03:11.123456+00:00', " + deleted_at + ", " + std::to_string(100 + id) + ", '" + name +
           "', " + encrypted_literal + ", 'aesgcm', '/root/.infra/sqlite3.db.key')");
}

ExitCode code_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        MESSAGE("error: " << std::string(e.what()));
        return e.code();
    }
    return ExitCode::ok;
}

}  // namespace

TEST_CASE("create_key_table creates the server's encryption_keys table and is idempotent") {
    for_each_backend([](Backend& b) {
        b.exec("DROP TABLE encryption_keys");
        auto s = b.open();
        CHECK_FALSE(s->has_key_table());
        s->create_key_table();
        CHECK(s->has_key_table());
        insert_key_row(b, 1, "dbkey", b.blob_literal("wrapped"));
        CHECK_NOTHROW(s->create_key_table());
        REQUIRE(s->live_key("dbkey"));
        CHECK(s->live_key("dbkey")->id == 1);
        // The unique index on key_id came with it.
        CHECK_THROWS(b.exec("INSERT INTO encryption_keys (id, key_id, name) VALUES (2, 101, 'other')"));
    });
}

TEST_CASE("a database without encryption_keys is reported as not an Infra database") {
    for_each_backend([](Backend& b) {
        b.exec("DROP TABLE encryption_keys");
        auto s = b.open();
        try {
            s->live_key("dbkey");
            FAIL("live_key did not throw");
        } catch (const Error& e) {
            CHECK(e.code() == ExitCode::database);
            CHECK(std::string(e.what()).find("has no encryption_keys table; is this an Infra database?") !=
                  std::string::npos);
        }
    });
}

TEST_CASE("live_key ignores soft-deleted rows") {
    for_each_backend([](Backend& b) {
        insert_key_row(b, 1, "dbkey", b.blob_literal("old"), "'2022-06-10 00:00:00+00:00'");
        insert_key_row(b, 2, "dbkey", b.blob_literal("current"));
        insert_key_row(b, 3, "other", b.blob_literal("x"), "'2022-06-10 00:00:00+00:00'");
        auto s = b.open();
        auto row = s->live_key("dbkey");
        REQUIRE(row);
        CHECK(row->id == 2);
        CHECK(row->key_id == 102);
        CHECK(as_text(row->encrypted) == "current");
        CHECK(row->algorithm == "aesgcm");
        CHECK(row->root_key_id == "/root/.infra/sqlite3.db.key");
        CHECK(row->created_at.rfind("2022-06-09 14:03:11.123456", 0) == 0);
        CHECK_FALSE(s->live_key("other"));
        CHECK_FALSE(s->live_key("missing"));
        REQUIRE(s->live_keys().size() == 1);
        CHECK(s->live_keys()[0].id == 2);
    });
}

TEST_CASE("the wrapped db key reads the same whether stored as TEXT or BLOB") {
    for_each_backend([](Backend& b) {
        insert_key_row(b, 1, "as-text", "'c2VhbGVkIGtleQ'");
        insert_key_row(b, 2, "as-blob", b.blob_literal("c2VhbGVkIGtleQ"));
        auto s = b.open();
        CHECK(as_text(s->live_key("as-text")->encrypted) == "c2VhbGVkIGtleQ");
        CHECK(as_text(s->live_key("as-blob")->encrypted) == "c2VhbGVkIGtleQ");
    });
}

TEST_CASE("only the known encrypted columns that exist in the database are listed") {
    for_each_backend([](Backend& b) {
        auto all = b.open()->encrypted_columns();
        CHECK(all.size() == 7);  // the fixture has neither providers.private_key nor organizations
        b.exec("DROP TABLE settings");
        b.exec("ALTER TABLE root_certificates DROP COLUMN signed_cert");
        std::vector<std::string> names;
        for (const auto& c : b.open()->encrypted_columns()) names.push_back(c.name());
        CHECK(names == std::vector<std::string>{"providers.client_secret", "provider_users.access_token",
                                                "provider_users.refresh_token", "root_certificates.private_key",
                                                "destination_credentials.bearer_token"});
        for (const auto& c : store::known_encrypted_columns()) CHECK(c.blob == (c.column == "private_jwk"));
    });
}

TEST_CASE("a scan streams only non-empty values and names rows by id or by their primary key columns") {
    for_each_backend([](Backend& b) {
        b.exec("INSERT INTO providers (id, name, client_secret) VALUES (4, 'd', 'v4'), (1, 'a', 'v1'), (2, 'b', ''), "
               "(3, 'c', NULL)");
        b.exec("INSERT INTO provider_users (identity_id, provider_id, access_token, refresh_token) "
               "VALUES (5, 7, 'tok', ''), (6, 7, NULL, 'ref')");
        b.exec("INSERT INTO settings (id, private_jwk) VALUES (9, " + b.blob_literal("jwk") + "), (10, " +
               b.blob_literal("") + ")");
        auto s = b.open();
        using Seen = std::vector<std::pair<std::string, std::string>>;
        CHECK(scan_all(*s, column("providers", "client_secret")) == Seen{{"1", "v1"}, {"4", "v4"}});
        CHECK(scan_all(*s, column("provider_users", "access_token")) == Seen{{"identity_id=5,provider_id=7", "tok"}});
        CHECK(scan_all(*s, column("provider_users", "refresh_token")) == Seen{{"identity_id=6,provider_id=7", "ref"}});
        CHECK(scan_all(*s, column("settings", "private_jwk")) == Seen{{"9", "jwk"}});
        CHECK(scan_all(*s, column("root_certificates", "private_key")).empty());

        CHECK(s->count_values(column("providers", "client_secret")) == 2);
        CHECK(s->count_values(column("settings", "private_jwk")) == 1);
        CHECK(s->count_values(column("destination_credentials", "bearer_token")) == 0);

        int visited = 0;
        s->scan_values(column("providers", "client_secret"), [&](const store::StoredValue&) { return ++visited < 1; });
        CHECK(visited == 1);
    });
}

TEST_CASE("a scan inside an open write transaction sees its writes and survives a throwing visitor") {
    for_each_backend([](Backend& b) {
        b.exec("INSERT INTO providers (id, client_secret) VALUES (1, 'a'), (2, 'b')");
        auto s = b.open();
        auto tx = s->begin_exclusive();
        tx->rewrite_values({column("providers", "client_secret")}, [](std::string_view text) { return "new-" + std::string(text); });
        auto stop = [](const store::StoredValue&) -> bool { throw std::runtime_error("visitor failed"); };
        CHECK_THROWS_AS(s->scan_values(column("providers", "client_secret"), stop), std::runtime_error);
        using Seen = std::vector<std::pair<std::string, std::string>>;
        CHECK(scan_all(*s, column("providers", "client_secret")) == Seen{{"1", "new-a"}, {"2", "new-b"}});
        tx->commit();
        CHECK_THROWS_AS(s->scan_values(column("providers", "client_secret"), stop), std::runtime_error);
        CHECK(scan_all(*s, column("providers", "client_secret")).size() == 2);
    });
}

TEST_CASE("a scan streams a column larger than one fetch") {
    for_each_backend([](Backend& b) {
        b.exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 25000) "
               "INSERT INTO providers (id, client_secret) SELECT i, 'value-' || i FROM n");
        auto s = b.open();
        uint64_t n = 0;
        bool in_order = true;
        s->scan_values(column("providers", "client_secret"), [&](const store::StoredValue& v) {
            ++n;
            in_order = in_order && v.row == std::to_string(n) && v.text == "value-" + std::to_string(n);
            return true;
        });
        CHECK(n == 25000);
        CHECK(in_order);
    });
}

// "table.column", with ":blob" where PostgreSQL writes it back as bytea.
std::vector<std::string> column_names(store::KeyStore& s) {
    std::vector<std::string> names;
    for (const auto& t : s.text_columns())
        for (const auto& c : t.columns) names.push_back(c.name() + (c.blob ? ":blob" : ""));
    return names;
}

std::vector<std::string> columns_of(const std::vector<std::string>& names, const std::string& table) {
    std::vector<std::string> of;
    for (const auto& n : names)
        if (n.rfind(table + ".", 0) == 0) of.push_back(n);
    return of;
}

TEST_CASE("text_columns lists the columns of every table but encryption_keys that can hold a sealed value") {
    for_each_backend([](Backend& b) {
        b.exec("CREATE TABLE vendor (id bigint, note varchar(20), n integer)");
        auto names = column_names(*b.open());
        auto has = [&](const std::string& n) { return std::find(names.begin(), names.end(), n) != names.end(); };
        CHECK(has("providers.client_secret"));
        CHECK(has("vendor.note"));
        CHECK(columns_of(names, "encryption_keys").empty());
        CHECK_FALSE(b.open()->migration_ids().has_value());
        b.exec("CREATE TABLE migrations (id varchar(255) PRIMARY KEY)");
        b.exec("INSERT INTO migrations (id) VALUES ('2022-11-21T11:00')");
        CHECK(*b.open()->migration_ids() == std::vector<std::string>{"2022-11-21T11:00"});
    });
}

TEST_CASE("text_columns on SQLite takes every column whatever its declared type, but the rowid alias") {
    SqliteBackend b;
    b.exec("CREATE TABLE vendor (id integer PRIMARY KEY, doc json, at datetime, flag boolean, n bigint, r real, "
           "note text, raw)");
    b.exec("CREATE TABLE keyed (id integer PRIMARY KEY, v text) WITHOUT ROWID");
    b.exec("CREATE TABLE descending (id integer PRIMARY KEY DESC, v text)");
    b.exec("CREATE TABLE pair (a integer, b integer, PRIMARY KEY (a, b))");
    auto names = column_names(*b.open());
    CHECK(columns_of(names, "vendor") == std::vector<std::string>{"vendor.doc", "vendor.at", "vendor.flag", "vendor.n",
                                                                  "vendor.r", "vendor.note", "vendor.raw"});
    // Not rowid aliases: each of these keys can hold text.
    CHECK(columns_of(names, "keyed") == std::vector<std::string>{"keyed.id", "keyed.v"});
    CHECK(columns_of(names, "descending") == std::vector<std::string>{"descending.id", "descending.v"});
    CHECK(columns_of(names, "pair") == std::vector<std::string>{"pair.a", "pair.b"});
    // `id integer, …, PRIMARY KEY (id)`, as the server declares it, is the rowid alias.
    CHECK(std::find(names.begin(), names.end(), "providers.id") == names.end());
    CHECK(std::find(names.begin(), names.end(), "providers.created_at") != names.end());
}

// Each {table, column, where, "type:value"}: a cell's storage type (SQLite) or type (PostgreSQL),
// and its value.
void check_typed_cells(Backend& b, const std::vector<std::array<std::string, 4>>& expected) {
    for (const auto& [table, column, where, typed] : expected) {
        INFO(table << "." << column << " where " << where);
        CHECK(b.cell_type(table, column, where) + ":" + b.cell(table, column, where).value_or("NULL") == typed);
    }
}

// citext, domains over text (and over such a domain) and over bytea: string columns by another name.
void create_string_types(Backend& b) {
    b.exec("CREATE EXTENSION citext");
    b.exec("CREATE DOMAIN secret_text AS text CHECK (VALUE <> ''); CREATE DOMAIN nested_secret AS secret_text; "
           "CREATE DOMAIN secret_bytes AS bytea");
}

TEST_CASE("text_columns on PostgreSQL takes string types, domains over them and bytea, not json") {
    auto pg = env("INFRA_KEYS_TEST_PG");
    if (!pg) return;
    PostgresBackend b(*pg);
    create_string_types(b);
    b.exec("CREATE DOMAIN amount AS integer");
    b.exec("CREATE TABLE vendor (id bigint PRIMARY KEY, d secret_text, dd nested_secret, ci citext, sb secret_bytes, "
           "raw bytea, nm name, c char(4), doc json, docb jsonb, n integer, a amount, at timestamptz, "
           "tags text[])");
    auto names = column_names(*b.open());
    CHECK(columns_of(names, "vendor") == std::vector<std::string>{"vendor.d", "vendor.dd", "vendor.ci",
                                                                  "vendor.sb:blob", "vendor.raw:blob", "vendor.nm",
                                                                  "vendor.c"});
    CHECK(std::find(names.begin(), names.end(), "settings.private_jwk:blob") != names.end());
}

TEST_CASE("the census reads text and blob values out of any SQLite column, and rewrites keep each one's storage class") {
    SqliteBackend b;
    b.exec("CREATE TABLE vendor (id integer PRIMARY KEY, doc json, n integer)");
    b.exec("INSERT INTO vendor (id, doc, n) VALUES (1, 'text-1', 7), (2, X'626C6F622D32', 'text-in-int'), "
           "(3, 12, 1.5), (4, 2.5, NULL)");
    auto s = b.open();
    store::TableColumns vendor{"vendor", {{"vendor", "doc", false}, {"vendor", "n", false}}};
    std::vector<std::string> seen;
    s->scan_rows(vendor, [&](const store::StoredRow& row) {
        seen.push_back(std::string(row.row) + ":" + std::string(row.values[0]) + "/" + std::string(row.values[1]));
    });
    // Integers and reals read as empty: never a payload, never turned into text.
    CHECK(seen == std::vector<std::string>{"1:text-1/", "2:blob-2/text-in-int", "3:/", "4:/"});

    auto tx = s->begin_exclusive();
    std::vector<std::string> visited;
    auto renew = [&](std::string_view text) -> std::optional<std::string> {
        visited.emplace_back(text);
        return "new-" + std::string(text);
    };
    CHECK(tx->rewrite_values({{"vendor", "doc", false}, {"vendor", "n", false}}, renew) == std::vector<uint64_t>{2, 1});
    CHECK(visited == std::vector<std::string>{"text-1", "blob-2", "text-in-int"});
    tx->commit();
    check_typed_cells(b, {{"vendor", "doc", "id = 1", "text:new-text-1"},
                          {"vendor", "doc", "id = 2", "blob:new-blob-2"},
                          {"vendor", "n", "id = 2", "text:new-text-in-int"},
                          {"vendor", "doc", "id = 3", "integer:12"},
                          {"vendor", "n", "id = 3", "real:1.5"}});
}

TEST_CASE("the census reads PostgreSQL domains and citext, and rewrites them by key and by ctid") {
    auto pg = env("INFRA_KEYS_TEST_PG");
    if (!pg) return;
    PostgresBackend b(*pg);
    create_string_types(b);
    b.exec("CREATE TABLE vendor (id bigint PRIMARY KEY, d secret_text, dd nested_secret, ci citext, sb secret_bytes)");
    b.exec("CREATE TABLE loose (user_id bigint, d secret_text)");
    b.exec("INSERT INTO vendor VALUES (1, 'd-1', 'dd-1', 'Ci-1', " + b.blob_literal("sb-1") + "), "
           "(2, NULL, 'dd-2', NULL, NULL)");
    b.exec("INSERT INTO loose VALUES (5, 'loose-5')");
    auto s = b.open();
    store::TableColumns vendor;
    for (auto& t : s->text_columns())
        if (t.table == "vendor") vendor = t;
    REQUIRE(vendor.columns.size() == 4);
    std::vector<std::string> seen;
    s->scan_rows(vendor, [&](const store::StoredRow& row) {
        std::string line(row.row);
        for (auto v : row.values) line += "/" + std::string(v);
        seen.push_back(line);
    });
    CHECK(seen == std::vector<std::string>{"1/d-1/dd-1/Ci-1/sb-1", "2//dd-2//"});

    auto tx = s->begin_exclusive();
    auto renew = [](std::string_view text) -> std::optional<std::string> { return "new-" + std::string(text); };
    CHECK(tx->rewrite_values(vendor.columns, renew) == std::vector<uint64_t>{1, 2, 1, 1});
    CHECK(tx->rewrite_values({{"loose", "d", false}}, renew) == std::vector<uint64_t>{1});
    tx->commit();
    check_typed_cells(b, {{"vendor", "d", "id = 1", "secret_text:new-d-1"},
                          {"vendor", "dd", "id = 2", "nested_secret:new-dd-2"},
                          {"vendor", "ci", "id = 1", "citext:new-Ci-1"},
                          {"vendor", "sb", "id = 1", "secret_bytes:new-sb-1"},
                          {"loose", "d", "user_id = 5", "secret_text:new-loose-5"}});
}

TEST_CASE("scan_rows reads a table's columns in one pass, NULL as empty") {
    for_each_backend([](Backend& b) {
        b.exec("INSERT INTO provider_users (identity_id, provider_id, access_token, refresh_token) VALUES "
               "(1, 1, 'a1', NULL), (2, 1, '', 'r2')");
        auto s = b.open();
        store::TableColumns table{"provider_users", {column("provider_users", "access_token"),
                                                     column("provider_users", "refresh_token")}};
        std::vector<std::string> seen;
        s->scan_rows(table, [&](const store::StoredRow& row) {
            seen.push_back(std::string(row.row) + ":" + std::string(row.values[0]) + "/" + std::string(row.values[1]));
        });
        CHECK(seen == std::vector<std::string>{"identity_id=1,provider_id=1:a1/", "identity_id=2,provider_id=1:/r2"});
    });
}

TEST_CASE("scan_rows reads a table larger than a fetch once, and a visitor's error leaves the connection usable") {
    // Every row comes once across PostgreSQL's fetches, and a throwing visitor leaves no cursor (or
    // fetch) behind to be in the way of the next scan, in a transaction or not.
    for_each_backend([](Backend& b) {
        b.exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 12345) "
               "INSERT INTO providers (id, client_secret) SELECT i, 'value-' || i FROM n");
        auto s = b.open();
        store::TableColumns table{"providers", {column("providers", "client_secret")}};
        auto read_all = [&] {
            std::set<std::string> seen;
            uint64_t rows = 0;
            s->scan_rows(table, [&](const store::StoredRow& row) {
                ++rows;
                seen.insert(std::string(row.values[0]));
            });
            CHECK(rows == 12345);
            CHECK(seen.size() == 12345);
        };
        read_all();
        uint64_t visited = 0;
        auto fail_early = [&](const store::StoredRow&) {
            if (++visited == 100) throw std::runtime_error("visitor failed");
        };
        CHECK_THROWS_WITH_AS(s->scan_rows(table, fail_early), "visitor failed", std::runtime_error);
        read_all();
        auto tx = s->begin_exclusive();
        visited = 0;
        CHECK_THROWS_WITH_AS(s->scan_rows(table, fail_early), "visitor failed", std::runtime_error);
        read_all();
        tx->commit();
    });
}

TEST_CASE("rewrite_values addresses the rows of a table without a primary key exactly") {
    for_each_backend([](Backend& b) {
        b.exec("CREATE TABLE creds (user_id bigint, bearer_token text)");
        b.exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1203) "
               "INSERT INTO creds (user_id, bearer_token) SELECT i, 'old-' || i FROM n");
        b.exec("INSERT INTO creds (user_id, bearer_token) VALUES (5, 'old-5')");  // a duplicate row
        auto s = b.open();
        auto tx = s->begin_exclusive();
        uint64_t visited = 0;
        CHECK(tx->rewrite_values({store::EncryptedColumn{"creds", "bearer_token", false}}, [&](std::string_view text) -> std::optional<std::string> {
            ++visited;
            if (text == "old-600") return std::nullopt;
            return "new-" + std::string(text);
        }) == std::vector<uint64_t>{1203});
        CHECK(visited == 1204);  // each row once, never its new version again
        tx->commit();
        CHECK(b.cell("creds", "bearer_token", "user_id = 1") == "new-old-1");
        CHECK(b.cell("creds", "bearer_token", "user_id = 600") == "old-600");
        CHECK(b.cell("creds", "bearer_token", "user_id = 1203") == "new-old-1203");
    });
}

TEST_CASE("rewrite_values sets every rewritten column of a row in one UPDATE and leaves the others as they are") {
    for_each_backend([](Backend& b) {
        // Counts the UPDATEs each row receives, as an audit trigger of the server's would see them.
        b.exec("CREATE TABLE row_updates (provider_id bigint)");
        if (b.name() == "sqlite") {
            b.exec("CREATE TRIGGER count_updates AFTER UPDATE ON provider_users BEGIN "
                   "INSERT INTO row_updates VALUES (NEW.provider_id); END");
        } else {
            b.exec("CREATE FUNCTION count_update() RETURNS trigger LANGUAGE plpgsql AS "
                   "$$ BEGIN INSERT INTO row_updates VALUES (NEW.provider_id); RETURN NEW; END $$");
            b.exec("CREATE TRIGGER count_updates AFTER UPDATE ON provider_users FOR EACH ROW EXECUTE FUNCTION count_update()");
        }
        b.exec("INSERT INTO provider_users (identity_id, provider_id, access_token, refresh_token) VALUES "
               "(1, 1, 'a', 'b'), (1, 2, 'c', ''), (1, 3, NULL, 'keep'), (1, 4, 'keep', 'd'), (1, 5, NULL, NULL)");
        auto s = b.open();
        auto tx = s->begin_exclusive();
        auto renew = [](std::string_view text) -> std::optional<std::string> {
            if (text == "keep") return std::nullopt;
            return "new-" + std::string(text);
        };
        CHECK(tx->rewrite_values({column("provider_users", "access_token"), column("provider_users", "refresh_token")},
                                 renew) == std::vector<uint64_t>{2, 2});
        tx->commit();
        auto cell = [&](const char* column, int provider) {
            return b.cell("provider_users", column, "provider_id = " + std::to_string(provider));
        };
        CHECK(cell("access_token", 1) == "new-a");
        CHECK(cell("refresh_token", 1) == "new-b");
        CHECK(cell("access_token", 2) == "new-c");
        CHECK(cell("refresh_token", 2) == "");
        CHECK(!cell("access_token", 3));
        CHECK(cell("refresh_token", 3) == "keep");
        CHECK(cell("access_token", 4) == "keep");
        CHECK(cell("refresh_token", 4) == "new-d");
        CHECK(!cell("access_token", 5));
        // One UPDATE per changed row, none for a row without a replacement.
        CHECK(b.value("SELECT CAST(count(*) AS TEXT) FROM row_updates") == "3");
        CHECK(b.value("SELECT CAST(count(DISTINCT provider_id) AS TEXT) FROM row_updates") == "3");
        CHECK(b.value("SELECT CAST(count(*) AS TEXT) FROM row_updates WHERE provider_id IN (3, 5)") == "0");
        CHECK(b.cell_type("provider_users", "refresh_token", "provider_id = 1") == "text");
    });
}

TEST_CASE("rewrite_values on SQLite keeps each value's storage class") {
    SqliteBackend b;
    b.exec("INSERT INTO provider_users (identity_id, provider_id, access_token) VALUES (1, 1, 'text'), (1, 2, "
           "CAST('blob' AS BLOB))");
    auto s = b.open();
    auto tx = s->begin_exclusive();
    CHECK(tx->rewrite_values({column("provider_users", "access_token")},
                             [](std::string_view text) { return "new-" + std::string(text); }) ==
          std::vector<uint64_t>{2});
    tx->commit();
    CHECK(b.cell("provider_users", "access_token", "provider_id = 1") == "new-text");
    CHECK(b.cell_type("provider_users", "access_token", "provider_id = 1") == "text");
    CHECK(b.cell("provider_users", "access_token", "provider_id = 2") == "new-blob");
    CHECK(b.cell_type("provider_users", "access_token", "provider_id = 2") == "blob");
}

TEST_CASE("rewrite_values writes text columns back as TEXT and private_jwk as BLOB, page by page") {
    for_each_backend([](Backend& b) {
        b.exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1203) "
               "INSERT INTO providers (id, client_secret) SELECT i, 'old-' || i FROM n");
        b.exec("UPDATE providers SET client_secret = '' WHERE id = 7");
        b.exec("INSERT INTO provider_users (identity_id, provider_id, access_token) VALUES (5, 7, 'tok'), (5, 8, 'keep')");
        b.exec("INSERT INTO settings (id, private_jwk) VALUES (1, " + b.blob_literal("jwk") + ")");
        auto s = b.open();
        auto tx = s->begin_exclusive();
        std::vector<std::string> seen;
        auto renew = [&](std::string_view text) -> std::optional<std::string> {
            seen.emplace_back(text);
            if (text == "keep" || text == "old-600") return std::nullopt;
            return "new-" + std::string(text);
        };
        CHECK(tx->rewrite_values({column("providers", "client_secret")}, renew) == std::vector<uint64_t>{1201});
        CHECK(seen.size() == 1202);  // every non-empty value visited once (each is unique)
        CHECK(std::set<std::string>(seen.begin(), seen.end()).size() == 1202);
        CHECK(std::count(seen.begin(), seen.end(), "old-1203") == 1);
        seen.clear();
        CHECK(tx->rewrite_values({column("provider_users", "access_token")}, renew) == std::vector<uint64_t>{1});
        std::sort(seen.begin(), seen.end());
        CHECK(seen == std::vector<std::string>{"keep", "tok"});
        CHECK(tx->rewrite_values({column("settings", "private_jwk")}, renew) == std::vector<uint64_t>{1});
        tx->commit();

        CHECK(b.cell("providers", "client_secret", "id = 1") == "new-old-1");
        CHECK(b.cell("providers", "client_secret", "id = 1203") == "new-old-1203");
        CHECK(b.cell("providers", "client_secret", "id = 600") == "old-600");
        CHECK(b.cell("providers", "client_secret", "id = 7") == "");
        CHECK(b.cell_type("providers", "client_secret", "id = 1") == "text");
        CHECK(b.cell("provider_users", "access_token", "provider_id = 7") == "new-tok");
        CHECK(b.cell("provider_users", "access_token", "provider_id = 8") == "keep");
        CHECK(b.cell_type("provider_users", "access_token", "provider_id = 7") == "text");
        CHECK(b.cell("settings", "private_jwk", "id = 1") == "new-jwk");
        CHECK(b.cell_type("settings", "private_jwk", "id = 1") == "blob");
    });
}

TEST_CASE("a rewriter that fails on a later page stops the rewrite with its own error, nothing written") {
    // PostgreSQL runs the rewriter over the next page while the server updates this one: its
    // error must still come out, in order, and leave the transaction to roll back.
    for_each_backend([](Backend& b) {
        b.exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1203) "
               "INSERT INTO providers (id, client_secret) SELECT i, 'old-' || i FROM n");
        auto s = b.open();
        {
            auto tx = s->begin_exclusive();
            auto renew = [](std::string_view text) -> std::optional<std::string> {
                if (text == "old-1100") throw std::runtime_error("rewriter failed at old-1100");
                return "new-" + std::string(text);
            };
            CHECK_THROWS_WITH_AS(tx->rewrite_values({column("providers", "client_secret")}, renew),
                                 "rewriter failed at old-1100", std::runtime_error);
        }
        CHECK(b.cell("providers", "client_secret", "id = 1") == "old-1");
        CHECK(b.cell("providers", "client_secret", "id = 1203") == "old-1203");
        auto tx = s->begin_exclusive();  // the failed rewrite left nothing in the way of the next one
        CHECK(tx->rewrite_values({column("providers", "client_secret")}, [](std::string_view text) {
            return std::optional<std::string>("new-" + std::string(text));
        }) == std::vector<uint64_t>{1203});
        tx->commit();
        CHECK(b.cell("providers", "client_secret", "id = 1100") == "new-old-1100");
    });
}

TEST_CASE("insert_key and update_key store the wrapped key as BLOB with the server's timestamps") {
    for_each_backend([](Backend& b) {
        auto s = b.open();
        auto tx = s->begin_exclusive();
        store::KeyRow row;
        row.id = 4611686018427387905;
        row.key_id = 2147483647;
        row.name = "dbkey";
        row.encrypted = {'w', 'r', 'a', 'p', 0, 0xff};
        row.algorithm = "aesgcm";
        row.root_key_id = "/var/lib/infrahq/server/sqlite3.db.key";
        row.created_at = row.updated_at = "2022-06-09 14:03:11.123456789+00:00";
        tx->insert_key(row);
        CHECK(tx->live_key("dbkey")->encrypted == row.encrypted);  // visible inside the transaction
        tx->commit();

        CHECK(b.cell_type("encryption_keys", "encrypted", "name = 'dbkey'") == "blob");
        auto stored = s->live_key("dbkey");
        REQUIRE(stored);
        CHECK(stored->id == row.id);
        CHECK(stored->key_id == row.key_id);
        CHECK(stored->encrypted == row.encrypted);
        CHECK(stored->root_key_id == row.root_key_id);
        if (b.name() == "sqlite")
            CHECK(stored->created_at == row.created_at);  // kept exactly as written
        else
            CHECK(stored->created_at == "2022-06-09 14:03:11.123457+00:00");  // timestamptz keeps microseconds

        auto tx2 = s->begin_exclusive();
        row.encrypted = {'n', 'e', 'w'};
        row.root_key_id = "alias/infra";
        row.updated_at = "2023-01-02 03:04:05.5+00:00";
        tx2->update_key(row);
        tx2->commit();
        stored = s->live_key("dbkey");
        CHECK(as_text(stored->encrypted) == "new");
        CHECK(stored->root_key_id == "alias/infra");
        CHECK(stored->updated_at.rfind("2023-01-02 03:04:05.5", 0) == 0);
        CHECK(b.cell_type("encryption_keys", "encrypted", "name = 'dbkey'") == "blob");

        auto tx3 = s->begin_exclusive();
        row.id = 12345;
        CHECK(code_of([&] { tx3->update_key(row); }) == ExitCode::database);
    });
}

TEST_CASE("a transaction destroyed without commit leaves the database unchanged") {
    for_each_backend([](Backend& b) {
        insert_key_row(b, 1, "dbkey", b.blob_literal("wrapped"));
        b.exec("INSERT INTO providers (id, client_secret) VALUES (1, 'a'), (2, 'b')");
        b.exec("INSERT INTO provider_users (identity_id, provider_id, access_token) VALUES (1, 1, 'tok')");
        std::string before = b.snapshot();
        auto s = b.open();
        {
            auto tx = s->begin_exclusive();
            auto row = *tx->live_key("dbkey");
            row.algorithm = "changed";
            tx->update_key(row);
            row.id = 2;
            row.key_id = 999;
            tx->insert_key(row);
            tx->rewrite_values({column("providers", "client_secret")}, [](std::string_view) { return std::string("x"); });
            tx->rewrite_values({column("provider_users", "access_token")}, [](std::string_view) { return std::string("x"); });
        }
        CHECK(b.snapshot() == before);
        CHECK_NOTHROW(s->begin_exclusive()->commit());  // the store is usable again
    });
}

TEST_CASE("a second writer is refused at once while one holds the write lock") {
    for_each_backend([](Backend& b) {
        insert_key_row(b, 1, "dbkey", b.blob_literal("wrapped"));
        auto first = b.open();
        auto second = b.open();
        auto tx = first->begin_exclusive();
        auto started = std::chrono::steady_clock::now();
        try {
            second->begin_exclusive();
            FAIL("second writer was not refused");
        } catch (const Error& e) {
            CHECK(e.code() == ExitCode::refused);
            MESSAGE(std::string(e.what()));
        }
        CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(5));
        CHECK(second->live_key("dbkey"));  // readers are not blocked
        tx.reset();
        CHECK_NOTHROW(second->begin_exclusive());
    });
}

// Whether `text` is `shape` with each 'd' a digit.
bool has_shape(std::string_view text, std::string_view shape) {
    if (text.size() != shape.size()) return false;
    for (size_t i = 0; i < text.size(); ++i)
        if (shape[i] == 'd' ? !std::isdigit(static_cast<unsigned char>(text[i])) : text[i] != shape[i]) return false;
    return true;
}

TEST_CASE("now_timestamp has the server's format") {
    // YYYY-MM-DD HH:MM:SS, an optional fraction of 1 to 9 digits, +00:00 (std::regex, which said
    // this before, does not build under GCC's ASan at -O3 with -Werror).
    auto t = store::now_timestamp();
    REQUIRE(t.size() >= 25);
    CHECK(has_shape(t.substr(0, 19), "dddd-dd-dd dd:dd:dd"));
    CHECK(t.substr(t.size() - 6) == "+00:00");
    std::string_view fraction = std::string_view(t).substr(19, t.size() - 25);
    if (!fraction.empty()) {
        CHECK(fraction.size() >= 2);
        CHECK(fraction.size() <= 10);
        CHECK(has_shape(fraction, "." + std::string(fraction.size() - 1, 'd')));
    }
    CHECK(t.substr(0, 2) == "20");
    CHECK_FALSE(has_shape("2026-12-02 18:4x:00", "dddd-dd-dd dd:dd:dd"));
}

TEST_CASE("parse_timestamp reads the server's, PostgreSQL's and a backup's timestamps in UTC") {
    constexpr int64_t s = 1'000'000'000;
    auto at = store::parse_timestamp("2022-06-09 14:03:11.123456789+00:00");
    REQUIRE(at);
    CHECK(*at == 1654783391 * s + 123456789);
    CHECK(store::parse_timestamp("2022-06-09T14:03:11Z") == 1654783391 * s);
    CHECK(store::parse_timestamp("2022-06-09 14:03:11.5+00") == 1654783391 * s + 500'000'000);
    CHECK(store::parse_timestamp("2022-06-09 16:03:11+02:00") == 1654783391 * s);
    CHECK(store::parse_timestamp("2022-06-09 09:33:11-0430") == 1654783391 * s);
    CHECK(store::parse_timestamp("2022-06-09 14:03:11.1234567891+00:00") == 1654783391 * s + 123456789);
    auto now = store::parse_timestamp(store::now_timestamp());
    REQUIRE(now);
    CHECK(*now > 1654783391 * s);
    for (const char* bad : {"", "yesterday", "2022-13-09 14:03:11Z", "2022-06-09 14:03:11 UTC", "2022-06-09"})
        CHECK_MESSAGE(!store::parse_timestamp(bad), bad);
}

TEST_CASE("opening a missing SQLite file names it, and create makes it") {
    char pattern[] = "/tmp/infra-keys-store-test.XXXXXX";
    REQUIRE(mkdtemp(pattern));
    std::string path = std::string(pattern) + "/infra/sqlite3.db";
    try {
        store::open_sqlite(path, false);
        FAIL("no error");
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::database);
        CHECK(std::string(e.what()) == "database " + path + " does not exist");
    }
    auto s = store::open_sqlite(path, true);
    CHECK(s->describe() == "sqlite " + path);
    CHECK(s->identity() == path);
    s->create_key_table();
    CHECK(s->has_key_table());
    CHECK(s->encrypted_columns().empty());
    s.reset();
    fs::remove_all(pattern);
}

TEST_CASE("a file that is not SQLite is a database error") {
    char pattern[] = "/tmp/infra-keys-store-test.XXXXXX";
    REQUIRE(mkdtemp(pattern));
    std::string path = std::string(pattern) + "/sqlite3.db";
    std::ofstream(path) << "this is not a database, just some text that is long enough to have a header......";
    CHECK(code_of([&] { store::open_sqlite(path, false); }) == ExitCode::database);
    fs::remove_all(pattern);
}

// ---- PostgreSQL only -------------------------------------------------------------------------

namespace {

std::map<std::string, std::string> conninfo_fields(const std::string& conninfo) {
    std::map<std::string, std::string> fields;
    std::istringstream in(conninfo);
    std::string word;
    while (in >> word) {
        auto eq = word.find('=');
        fields[word.substr(0, eq)] = word.substr(eq + 1);
    }
    return fields;
}

// PGPASSWORD would mask a password that is not passed; hide it for one test.
struct WithoutPgPassword {
    std::optional<std::string> saved = env("PGPASSWORD");
    WithoutPgPassword() { unsetenv("PGPASSWORD"); }
    ~WithoutPgPassword() {
        if (saved) setenv("PGPASSWORD", saved->c_str(), 1);
    }
};

}  // namespace

TEST_CASE("postgres: a connection terminated during a transaction is a database error and nothing is committed") {
    auto pg = env("INFRA_KEYS_TEST_PG");
    if (!pg) return;
    PostgresBackend b(*pg);
    insert_key_row(b, 1, "dbkey", b.blob_literal("wrapped"));
    b.exec("INSERT INTO providers (id, client_secret) VALUES (1, 'a')");
    std::string before = b.snapshot();
    auto s = b.open();
    auto tx = s->begin_exclusive();
    auto row = *tx->live_key("dbkey");
    row.algorithm = "changed";
    tx->update_key(row);
    tx->rewrite_values({column("providers", "client_secret")}, [](std::string_view) { return std::string("x"); });
    b.exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'infra-keys' "
           "AND pid <> pg_backend_pid()");
    try {
        tx->commit();
        FAIL("commit succeeded on a terminated connection");
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::database);
        CHECK(std::string(e.what()).find("postgres ") == 0);
        MESSAGE(std::string(e.what()));
    }
    tx.reset();  // rolling back a dead connection must not throw
    CHECK(b.snapshot() == before);
}

TEST_CASE("postgres: open() connects with the config's fields and the password, and never prints the password") {
    auto pg = env("INFRA_KEYS_TEST_PG");
    auto password = env("INFRA_KEYS_TEST_PG_PASSWORD");
    if (!pg || !password) return;
    PostgresBackend b(*pg);
    auto fields = conninfo_fields(*pg);
    WithoutPgPassword no_env;
    config::Config cfg;
    cfg.db_host = fields["host"];
    cfg.db_port = std::stoi(fields["port"]);
    cfg.db_name = fields["dbname"];
    cfg.db_username = fields["user"];
    cfg.db_parameters = "sslmode=disable connect_timeout=5";
    auto s = store::open(cfg, *password, false);
    std::string target = fields["host"] + ":" + fields["port"] + "/" + fields["dbname"];
    CHECK(s->describe() == "postgres " + target);
    CHECK(s->identity() == target);
    CHECK(s->has_key_table());

    std::string wrong = "Wrong-Secret-4711";
    try {
        store::open(cfg, wrong, false);
        FAIL("a wrong password connected");
    } catch (const Error& e) {
        std::string message = e.what();
        MESSAGE(message);
        CHECK(e.code() == ExitCode::database);
        CHECK(message.find(wrong) == std::string::npos);
        CHECK(message.find(target) != std::string::npos);
    }

    // --db-url: a URI with the password in it is used as given and never shown.
    std::string url = "postgresql://" + fields["user"] + ":" + *password + "@" + fields["host"] + ":" + fields["port"] +
                      "/" + fields["dbname"] + "?sslmode=disable";
    auto by_url = store::open(cfg, "", false, url);
    CHECK(by_url->describe() == "postgres " + target);
    std::string bad_url = "postgresql://" + fields["user"] + ":" + wrong + "@" + fields["host"] + ":" + fields["port"] +
                          "/" + fields["dbname"];
    try {
        store::open(cfg, "", false, bad_url);
        FAIL("a wrong password connected");
    } catch (const Error& e) {
        CHECK(std::string(e.what()).find(wrong) == std::string::npos);
    }
}

TEST_CASE("postgres: other_clients lists other sessions but not infra-keys ones") {
    auto pg = env("INFRA_KEYS_TEST_PG");
    if (!pg) return;
    PostgresBackend b(*pg);
    auto s = b.open();
    auto other_infra_keys = b.open();
    auto clients = s->other_clients();
    REQUIRE(clients.size() == 1);  // the test's side connection stands in for the server
    CHECK(clients[0].find("session ") == 0);
    CHECK(clients[0].find("127.0.0.1") != std::string::npos);
}

TEST_CASE("postgres: a row without a key that another session moves during a rewrite stops it, nothing written") {
    // Rows without a primary key are addressed by the ctid the cursor read. They are not locked as
    // they are read (that would write into every row of such a table), so a session that moves one
    // in between (an UPDATE gives it a new ctid) makes the rewrite's UPDATE miss it: the row count
    // must stop the rewrite rather than leave that value behind.
    auto pg = env("INFRA_KEYS_TEST_PG");
    if (!pg) return;
    PostgresBackend b(*pg);
    b.exec("CREATE TABLE creds (user_id bigint, bearer_token text)");
    b.exec("INSERT INTO creds (user_id, bearer_token) SELECT i, 'old-' || i FROM generate_series(1, 20) i");
    auto s = b.open();
    {
        auto tx = s->begin_exclusive();
        bool moved = false;
        auto renew = [&](std::string_view text) -> std::optional<std::string> {
            if (!moved) {  // the page is read: another session now moves a row of it
                b.exec("UPDATE creds SET user_id = user_id WHERE user_id = 7");
                moved = true;
            }
            return "new-" + std::string(text);
        };
        CHECK(code_of([&] { tx->rewrite_values({store::EncryptedColumn{"creds", "bearer_token", false}}, renew); }) ==
              ExitCode::database);
    }
    CHECK(b.cell("creds", "bearer_token", "user_id = 7") == "old-7");
    CHECK(b.cell("creds", "bearer_token", "user_id = 1") == "old-1");
}

TEST_CASE("postgres: a session holding the dbkey row lock makes begin_exclusive refuse after a short wait") {
    auto pg = env("INFRA_KEYS_TEST_PG");
    if (!pg) return;
    PostgresBackend b(*pg);
    insert_key_row(b, 1, "dbkey", b.blob_literal("wrapped"));
    b.exec("BEGIN; SELECT id FROM encryption_keys WHERE name = 'dbkey' FOR UPDATE");
    auto s = b.open();
    auto started = std::chrono::steady_clock::now();
    CHECK(code_of([&] { s->begin_exclusive(); }) == ExitCode::refused);
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(10));
    b.exec("ROLLBACK");
    CHECK_NOTHROW(s->begin_exclusive()->commit());
}
