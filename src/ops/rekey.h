// Re-wrapping the db key in the database: the one transaction every key change goes through.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ops/db_key.h"
#include "ops/scan.h"
#include "store/key_store.h"

namespace ik::ops {

struct NewWrapping {
    Bytes wrapped;            // the db key wrapped by the new root key
    std::string algorithm;    // encryption_keys.algorithm for it
    std::string root_key_id;  // encryption_keys.root_key_id for it
};

struct RekeyCounts {
    uint64_t values = 0;  // values carried over to the new row (re-keyed or re-sealed)
    std::vector<std::pair<std::string, uint64_t>> values_by_column;  // "table.column" -> values carried over
};

// How the new wrapping is proven before commit: unwrap it with the new root key.
using Unwrapper = std::function<SecretBytes(ByteView wrapped)>;

// The exclusive transaction of one key change.
struct KeyChange {
    std::unique_ptr<store::Transaction> tx;
};

// Begins a key change: takes the exclusive lock (ik::Error(refused) at once if another infra-keys
// holds it) and checks under it that the dbkey row is still `expected`, the row the caller
// unwrapped (ik::Error(refused) otherwise). A rotation begins it before it writes any key, so a
// second rotation on the same database stops before touching anything, whatever holds its keys.
KeyChange begin_key_change(store::KeyStore& store, const store::KeyRow& expected);

// How one value sealed by the old dbkey row is carried over to the new one: its new text, or
// nullopt for a value the change leaves alone (not a payload under the old key id). Holds no
// lock: call it from one thread at a time.
using ValueTransform = std::function<std::optional<std::string>(std::string_view text)>;

// A re-wrap (rotate-root, rewrap): the db key stays, so only the 4-byte key id outside the GCM
// authentication changes, from `from` to `to`, every other byte kept (docs/infra-format.md §6).
ValueTransform rekey_id(const seal::KeyId& from, const seal::KeyId& to);
// A new db key (rotate-data-key): opened with the old db key and sealed again with `to_key` as the
// server seals (fresh random nonce, key id `to_id`, the new row's `root_key_id`). A value under
// another key id, or one that does not open, is left alone (nullopt): the counts then differ and
// the change stops.
ValueTransform reseal(const OpenDbKey& from, const SecretBytes& to_key, const seal::KeyId& to_id,
                      const std::string& root_key_id);

// Where a key change takes the dbkey row and the values sealed by it.
struct KeyChangeTarget {
    NewWrapping next;            // the new row's encrypted, algorithm, root_key_id
    SecretBytes db_key;          // what `next` wraps: the same db key (a re-wrap) or a new one
    ValueTransform transform;    // how each value sealed by the old row is carried over
    Unwrapper unwrap_next;       // proves the stored row opens to `db_key`
    // The last step before the commit, once everything is proven (e.g. a backup of the new key
    // material); an error from it rolls everything back.
    std::function<void()> before_commit;
};

// In the key change's transaction: writes `target.next` into the dbkey row and carries every value
// sealed by the db key over with `target.transform`, wherever it is, in one pass over every text and
// blob column (that pass is the census of what to carry: no census is read before it). Then it
// reads the census under the new row and commits only if every value there opens under the new
// row's key and key id (so, GCM being authenticated, none is left under the old one), each column
// holds exactly the values the pass carried over, and `unwrap_next` opens the new row to
// `target.db_key`. Anything wrong rolls everything back; then a census under the old row tells a
// value that blocked the change (ik::Error(problems), naming each, as refuse_blocking_values) from
// a rewrite that went wrong (ik::Error(database)).
// `failpoint_prefix` names the points "<prefix>-before-commit"/"-after-commit".
RekeyCounts commit_key_change(KeyChange& change, store::KeyStore& store, const OpenDbKey& current,
                              const KeyChangeTarget& target, const std::string& failpoint_prefix);

// commit_key_change for a re-wrap: the same db key under `next`, values re-keyed with rekey_id.
RekeyCounts commit_rewrap(KeyChange& change, store::KeyStore& store, const OpenDbKey& current, const NewWrapping& next,
                          const Unwrapper& unwrap_next, const std::string& failpoint_prefix);
// The same in a key change of its own, for callers that write nothing before it.
RekeyCounts commit_rewrap(store::KeyStore& store, const OpenDbKey& current, const NewWrapping& next,
                          const Unwrapper& unwrap_next, const std::string& failpoint_prefix);

struct RekeyPlan {
    bool counted = false;  // the census was read: the fields below are known
    std::vector<std::pair<std::string, uint64_t>> values_by_column;  // "table.column" -> values to re-key
    uint64_t values = 0;
    std::vector<ValueProblem> blocking;  // values that would stop the change (the first ones named)
    uint64_t blocking_count = 0;         // all of them
};
// Read-only census of what re-keying away from `current` would touch and what would block it.
// When there are values to rewrite, refuses (ik::Error(database)) a database without the free disk
// its journal needs (KeyStore::room_to_rewrite), before anything is written.
RekeyPlan plan_rekey(store::KeyStore& store, const OpenDbKey& current);

// The plan of a key change, under its lock (begin_key_change), before anything is written. With
// `census_first` (a dry run, or a change that will take a step nothing can undo before its
// commit, such as a provider's new key version) it takes the census and refuses as
// refuse_blocking_values. Otherwise the census rides on the rewrite (commit_key_change), which
// saves reading every value once more; a blocking value then stops the change at its proof, after
// what was staged, which the caller's failure path undoes as for any failure before the commit
// (the plan is not `counted`). Either way it refuses first a database without the free disk its
// journal needs (KeyStore::room_to_rewrite), since it cannot know no value will be rewritten.
RekeyPlan plan_rewrite(store::KeyStore& store, const OpenDbKey& current, bool census_first);

// Plan: values that would stop the re-keying are the operator's problem to fix first (exit 1),
// named with where they are, before anything is written.
void refuse_blocking_values(const RekeyPlan& plan, const std::string& database);

}  // namespace ik::ops

