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
};

// How the new wrapping is proven before commit: unwrap it with the new root key.
using Unwrapper = std::function<SecretBytes(ByteView wrapped)>;

// A census taken under a key change's lock: nothing can change what it found before that change
// writes, so commit_rewrap takes it as its census before rewriting instead of reading it all again.
struct LockedCensus {
    seal::KeyId key_id;  // the db key row's key id it was taken for
    Census census;
};

// The exclusive transaction of one key change, with the encrypted columns read just before it.
struct KeyChange {
    std::vector<store::EncryptedColumn> columns;
    std::unique_ptr<store::Transaction> tx;
    std::optional<LockedCensus> census;  // set by plan_rekey(KeyChange&, …)
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

// In the key change's transaction: writes `target.next` into the dbkey row, takes a census of every
// text and blob column, carries every value it found sealed by the db key over with
// `target.transform`, wherever it is, then reads the census again and commits only if every one of
// those values opens under the new row's key and key id (so, GCM being authenticated, none under
// the old one), the counts per column are unchanged, and `unwrap_next` opens the new row to
// `target.db_key`. A sealed value that does not open or carries another key id stops it first
// (ik::Error(problems), naming each). Anything wrong rolls everything back.
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
    std::vector<std::pair<std::string, uint64_t>> values_by_column;  // "table.column" -> values to re-key
    uint64_t values = 0;
    std::vector<ValueProblem> blocking;  // values that would stop the change
};
// Read-only census of what re-keying away from `current` would touch and what would block it.
// When there are values to rewrite, refuses (ik::Error(database)) a database without the free disk
// its journal needs (KeyStore::room_to_rewrite), before anything is written.
RekeyPlan plan_rekey(store::KeyStore& store, const OpenDbKey& current);
// The same inside `change`, under its lock: the census is kept in change.census for commit_rewrap,
// so a key change reads every value twice (this census and the proof after rewriting), not three times.
RekeyPlan plan_rekey(KeyChange& change, store::KeyStore& store, const OpenDbKey& current);

// What commit_rewrap would touch, for --dry-run, from key ids alone (no key needed):
// (column name, values carrying the live dbkey row's key id) for every column holding any.
std::vector<std::pair<std::string, uint64_t>> values_to_rekey(store::KeyStore& store);

}  // namespace ik::ops

