// Decrypting every encrypted value of a database: the engine of `verify --level full`.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "crypto/seal.h"
#include "ops/db_key.h"
#include "store/key_store.h"

namespace ik::ops {

struct ColumnTally {
    store::EncryptedColumn column;
    uint64_t values = 0;  // non-empty values seen
    uint64_t failed = 0;
};

struct ValueFailure {
    std::string table, column, row;
    seal::Failure reason;
    std::string detail;  // e.g. "key id 3f1a9c02, db key is 8b02a1c3"
};

struct ScanReport {
    std::vector<ColumnTally> columns;
    std::vector<ValueFailure> failures;  // in table, column, row order
    uint64_t values() const;
    uint64_t failed() const;
};

struct ScanOptions {
    unsigned threads = 0;  // 0: one per core
    // Called now and then with (values done, values in all); from the reading thread only.
    std::function<void(uint64_t, uint64_t)> progress;
};

ScanReport scan_encrypted_values(store::KeyStore& store, const OpenDbKey& db_key, const ScanOptions& options = {});

// Why a value did not open, in words for the report.
std::string failure_detail(std::string_view text, seal::Failure reason, const seal::KeyId& expected);

}  // namespace ik::ops
