// Finding and opening the db key: the live `dbkey` row unwrapped by the configured root key.
#pragma once

#include <optional>
#include <string>

#include "crypto/seal.h"
#include "ops/installation.h"
#include "store/key_store.h"
#include "util/error.h"

namespace ik::ops {

constexpr const char* db_key_name = "dbkey";

struct OpenDbKey {
    store::KeyRow row;
    SecretBytes plaintext;
    seal::KeyId key_id;  // what every encrypted value must carry: key_id_of(row.encrypted)
};

// The live dbkey row, or ik::Error(database) naming the database and what to run.
store::KeyRow require_db_key_row(store::KeyStore& store);

// Unwraps the row with the configured provider (errors: wrong_key, provider).
OpenDbKey open_db_key(Installation& inst);
OpenDbKey open_db_key(providers::RootKeyProvider& provider, const store::KeyRow& row);

// ik::Error(provider) for a configured root key that is not there (or, remote, not enabled),
// with the fix that applies: a native key comes back from a backup, a remote one from its owner.
Error root_key_missing(providers::RootKeyProvider& provider);

}  // namespace ik::ops
