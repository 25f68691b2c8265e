// Re-wrapping the db key in the database: the one transaction every key change goes through.
#pragma once

#include <functional>
#include <string>

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

// In one exclusive transaction: checks the dbkey row is still the one `current` was read from,
// writes `next` into it, rewrites the key id of every encrypted value from key_id_of(old) to
// key_id_of(new) (spec §6: the server checks it), proves each value still opens and that
// `unwrap_next` opens the new row, then commits. Anything wrong rolls everything back.
// `failpoint_prefix` names the fault-injection points "<prefix>-before-commit"/"-after-commit".
RekeyCounts commit_rewrap(store::KeyStore& store, const OpenDbKey& current, const NewWrapping& next,
                          const Unwrapper& unwrap_next, const std::string& failpoint_prefix);

// What commit_rewrap would touch, for --dry-run: (column name, non-empty values) pairs.
std::vector<std::pair<std::string, uint64_t>> values_to_rekey(store::KeyStore& store);

}  // namespace ik::ops
