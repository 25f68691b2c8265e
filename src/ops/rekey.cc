#include "ops/rekey.h"

#include "ops/scan.h"

#include "util/error.h"
#include "util/failpoint.h"

namespace ik::ops {
namespace {

// Rewrites one column's key ids; a value that does not open under the db key aborts everything,
// because re-keying it would hide, not fix, the damage.
uint64_t rekey_column(store::Transaction& tx, const store::EncryptedColumn& column, const SecretBytes& db_key,
                      const seal::KeyId& old_id, const seal::KeyId& new_id) {
    seal::Opener opener(db_key, new_id);
    return tx.rewrite_values(column, [&](const store::StoredValue& value) -> std::optional<std::string> {
        auto payload = seal::parse(value.text);
        if (!payload) fail(ExitCode::refused, "{} row {} is not a sealed value; nothing changed (run `infra-keys verify --level full`)", column.name(), value.row);
        if (!std::equal(payload->key_id.begin(), payload->key_id.end(), old_id.begin(), old_id.end()))
            fail(ExitCode::refused, "{} row {} is {}; nothing changed (run `infra-keys verify --level full`)",
                 column.name(), value.row, failure_detail(value.text, seal::Failure::wrong_key, old_id));
        std::string rekeyed = seal::with_key_id(value.text, new_id);
        if (opener.open(rekeyed) != seal::Failure::none)
            fail(ExitCode::refused, "{} row {} does not decrypt with the db key; nothing changed (run `infra-keys verify --level full`)",
                 column.name(), value.row);
        return rekeyed;
    });
}

}  // namespace

KeyChange begin_key_change(store::KeyStore& store, const store::KeyRow& expected) {
    KeyChange change{store.encrypted_columns(), store.begin_exclusive()};
    auto row = change.tx->live_key(db_key_name);
    if (!row || row->id != expected.id || row->encrypted != expected.encrypted)
        fail(ExitCode::refused, "the dbkey row in {} changed while infra-keys worked; nothing written, run the command again",
             store.describe());
    return change;
}

RekeyCounts commit_rewrap(store::KeyStore& store, const OpenDbKey& current, const NewWrapping& next,
                          const Unwrapper& unwrap_next, const std::string& failpoint_prefix) {
    KeyChange change = begin_key_change(store, current.row);
    return commit_rewrap(change, store, current, next, unwrap_next, failpoint_prefix);
}

RekeyCounts commit_rewrap(KeyChange& change, store::KeyStore& store, const OpenDbKey& current, const NewWrapping& next,
                          const Unwrapper& unwrap_next, const std::string& failpoint_prefix) {
    store::Transaction* tx = change.tx.get();
    auto row = tx->live_key(db_key_name);
    // begin_key_change checked the row under the lock, which keeps it so: only a caller's mix-up
    // of rows gets here.
    if (!row || row->id != current.row.id || row->encrypted != current.row.encrypted)
        fail(ExitCode::internal, "the dbkey row in {} is not the one this key change began with", store.describe());

    store::KeyRow updated = *row;
    updated.encrypted = next.wrapped;
    updated.algorithm = next.algorithm;
    updated.root_key_id = next.root_key_id;
    updated.updated_at = store::now_timestamp();
    tx->update_key(updated);

    RekeyCounts counts;
    seal::KeyId new_id = seal::key_id_of(next.wrapped);
    if (new_id != current.key_id)
        for (const auto& column : change.columns)
            counts.values += rekey_column(*tx, column, current.plaintext, current.key_id, new_id);

    // Proof before commit: the row as now stored opens with the new root key to the same db key.
    auto stored = tx->live_key(db_key_name);
    if (!stored || stored->encrypted != next.wrapped || unwrap_next(stored->encrypted) != current.plaintext)
        fail(ExitCode::database, "the new dbkey row in {} does not unwrap to the db key; nothing committed", store.describe());

    failpoint(failpoint_prefix + "-before-commit");
    tx->commit();
    failpoint(failpoint_prefix + "-after-commit");
    return counts;
}

std::vector<std::pair<std::string, uint64_t>> values_to_rekey(store::KeyStore& store) {
    std::vector<std::pair<std::string, uint64_t>> out;
    for (const auto& column : store.encrypted_columns()) out.emplace_back(column.name(), store.count_values(column));
    return out;
}

}  // namespace ik::ops

// --- the plan step of a key change --------------------------------------------------------------
namespace ik::ops {

RekeyPlan plan_rekey(store::KeyStore& store, const OpenDbKey& current) {
    RekeyPlan plan;
    ScanReport scan = scan_encrypted_values(store, current);
    for (const auto& tally : scan.columns) {
        plan.values_by_column.emplace_back(tally.column.name(), tally.values);
        plan.values += tally.values;
    }
    for (const auto& f : scan.failures) {
        std::string reason = f.reason == seal::Failure::wrong_key        ? "other_key_id"
                             : f.reason == seal::Failure::authentication ? "authentication"
                                                                          : "malformed";
        plan.blocking.push_back({f.table, f.column, f.row, reason, f.detail});
    }
    return plan;
}

}  // namespace ik::ops
