// Re-wrapping the db key in the database: the one transaction every key change goes through.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ops/db_key.h"
#include "store/key_store.h"

namespace ik::ops {

struct NewWrapping {
    Bytes wrapped;            // the db key wrapped by the new root key
    std::string algorithm;    // encryption_keys.algorithm for it
    std::string root_key_id;  // encryption_keys.root_key_id for it
};

struct RekeyCounts {
    uint64_t values = 0;  // values whose key id was rewritten (spec §6)
};

// How the new wrapping is proven before commit: unwrap it with the new root key.
using Unwrapper = std::function<SecretBytes(ByteView wrapped)>;

// The exclusive transaction of one key change, with the encrypted columns read just before it.
struct KeyChange {
    std::vector<store::EncryptedColumn> columns;
    std::unique_ptr<store::Transaction> tx;
};

// Begins a key change: takes the exclusive lock (ik::Error(refused) at once if another infra-keys
// holds it) and checks under it that the dbkey row is still `expected`, the row the caller
// unwrapped (ik::Error(refused) otherwise). A rotation begins it before it writes any key, so a
// second rotation on the same database stops before touching anything, whatever holds its keys.
KeyChange begin_key_change(store::KeyStore& store, const store::KeyRow& expected);

// In the key change's transaction: writes `next` into the dbkey row, rewrites the key id of every
// encrypted value from key_id_of(old) to key_id_of(new) (spec §6: the server checks it), proves
// each value still opens and that `unwrap_next` opens the new row, then commits. Anything wrong
// rolls everything back. `failpoint_prefix` names the points "<prefix>-before-commit"/"-after-commit".
RekeyCounts commit_rewrap(KeyChange& change, store::KeyStore& store, const OpenDbKey& current, const NewWrapping& next,
                          const Unwrapper& unwrap_next, const std::string& failpoint_prefix);
// The same in a key change of its own, for callers that write nothing before it.
RekeyCounts commit_rewrap(store::KeyStore& store, const OpenDbKey& current, const NewWrapping& next,
                          const Unwrapper& unwrap_next, const std::string& failpoint_prefix);

// What commit_rewrap would touch, for --dry-run: (column name, non-empty values) pairs.
std::vector<std::pair<std::string, uint64_t>> values_to_rekey(store::KeyStore& store);

}  // namespace ik::ops

// --- the plan step of a key change (a simple census over the known columns) --------------------
namespace ik::ops {

struct ValueProblem { std::string table, column, row, reason, detail; };  // reason: wrong_key | authentication | malformed | other_key_id | unsealed
struct RekeyPlan {
    std::vector<std::pair<std::string, uint64_t>> values_by_column;  // "table.column" -> values to re-key
    uint64_t values = 0;
    std::vector<ValueProblem> blocking;  // values that would stop the change
};
// Read-only census of what re-keying away from `current` would touch and what would block it.
RekeyPlan plan_rekey(store::KeyStore& store, const OpenDbKey& current);

}  // namespace ik::ops
