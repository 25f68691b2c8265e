// The census: every value that is a sealed payload, in every column that can hold one, what key id it
// carries and whether it opens. The engine of `verify --level full`, `status` and every re-key.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "crypto/seal.h"
#include "ops/db_key.h"
#include "store/key_store.h"

namespace ik::ops {

// A value (or a column) that verify names and a re-key may refuse. reason is one of
//   wrong_key       a column the release seals holds a payload under another key id
//   other_key_id    the same in a column the release does not seal
//   authentication  the db key's key id, but the value does not open (modified or corrupt)
//   malformed       a column the release seals holds base64 text that is not a payload
//   unsealed        a column the release seals holds plaintext
//   unlisted        a value sealed by the db key in a column the release does not seal
//   missing_column  a column the release seals is not in the schema (row is empty)
struct ValueProblem { std::string table, column, row, reason, detail; };

// Whether a re-key must stop on it: a sealed value it could not carry over intact, or text in a
// column the release seals that is not a sealed value (damaged, or written by something else).
bool blocks_rekey(const ValueProblem& problem);

struct ColumnCensus {
    store::EncryptedColumn column;
    bool listed = false;      // the release seals this column
    uint64_t sealed = 0;      // payloads with the db key's id that open (or, not opening, carry it)
    uint64_t failed = 0;      // payloads that do not open under the db key
    uint64_t plaintext = 0;   // non-empty values that are not payloads
    std::vector<std::pair<std::string, uint64_t>> by_key_id;  // payloads per key id (hex)
};

struct Census {
    std::vector<ColumnCensus> columns;  // every column of store.text_columns(), in table, column order
    std::vector<ValueProblem> problems;  // table, column, row order; at most problems_named per column
    uint64_t problem_count = 0;          // all of them, named or not
    uint64_t sealed() const;             // what a re-key rewrites
    uint64_t failed() const;
    // Values a re-key must stop on (blocks_rekey), counted even past the ones named.
    uint64_t blocking() const;
};

struct CensusOptions {
    unsigned threads = 0;  // 0: one per core
    // Open each payload carrying the key id (false: classify by key id only, e.g. for `status`).
    bool open_values = true;
    // Columns the release seals; values there that are not payloads are problems, and (with
    // name_unlisted) sealed values elsewhere are named too. Empty function: no release known.
    std::function<bool(const store::EncryptedColumn&)> listed;
    bool name_unlisted = false;
    std::string release = "the release";  // "Infra v0.20.0", for messages
    // Called now and then with (rows done, rows in all); from the reading thread only.
    std::function<void(uint64_t, uint64_t)> progress;
};

constexpr size_t problems_named = 1000;  // per column; the counts stay exact

// One read of every column that can hold a payload (one statement per table), values opened on all cores,
// memory bounded by a few batches whatever the database's size. `db_key` is unused (may be empty)
// without options.open_values.
Census take_census(store::KeyStore& store, const SecretBytes& db_key, const seal::KeyId& key_id,
                   const CensusOptions& options = {});

// Why a value did not open, in words for the report.
std::string failure_detail(std::string_view text, seal::Failure reason, const seal::KeyId& expected);

}  // namespace ik::ops
