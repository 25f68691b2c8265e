// What the SQLite and PostgreSQL stores share: table shapes, row labels and identifier quoting.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "store/key_store.h"
#include "util/error.h"

namespace ik::store {


// The columns of one table, as the database reports them; empty when the table does not exist.
struct TableShape {
    struct Column {
        std::string name;
        std::string type;  // as declared (SQLite) or format_type() (PostgreSQL)
    };
    std::vector<Column> columns;
    std::vector<Column> primary_key;  // in key order

    bool exists() const { return !columns.empty(); }
    bool has(std::string_view column) const {
        return std::any_of(columns.begin(), columns.end(), [&](const Column& c) { return c.name == column; });
    }
    // Rows are named by `id` when the table has one, else by their primary key columns.
    std::vector<Column> row_key() const {
        for (const auto& c : columns)
            if (c.name == "id") return {c};
        return primary_key;
    }
};

// Table and column names come from the fixed list of known columns; quoting keeps reserved words
// (e.g. `groups`) working on both databases.
inline std::string sql_name(std::string_view name) {
    std::string q = "\"";
    for (char c : name) {
        if (c == '"') q += '"';
        q += c;
    }
    return q + "\"";
}

// An SQL expression (valid on SQLite and PostgreSQL) that names a row in messages: `1042`, or
// `identity_id=5,provider_id=7` for a composite key. `fallback` is used for tables without a key.
inline std::string row_label_sql(const TableShape& shape, std::string_view fallback) {
    auto key = shape.row_key();
    if (key.empty()) return std::string(fallback);
    if (key.size() == 1 && key[0].name == "id") return "coalesce(CAST(\"id\" AS TEXT), 'NULL')";
    std::string sql;
    for (size_t i = 0; i < key.size(); ++i) {
        if (i > 0) sql += " || ";
        std::string prefix = (i > 0 ? "," : "") + key[i].name + "=";
        sql += "'" + prefix + "' || coalesce(CAST(" + sql_name(key[i].name) + " AS TEXT), 'NULL')";
    }
    return sql;
}

// Transaction::rewrite_values rewrites one table per call: the columns of one row go into one UPDATE.
inline void require_one_table(const std::vector<EncryptedColumn>& columns) {
    bool one = !columns.empty() && std::all_of(columns.begin(), columns.end(),
                                               [&](const EncryptedColumn& c) { return c.table == columns.front().table; });
    if (!one) fail(ExitCode::internal, "rewrite_values needs the columns of exactly one table");
}

}  // namespace ik::store
