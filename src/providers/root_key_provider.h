// The root key provider interface (docs/infra-format.md §3): what wraps and unwraps the db key.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "util/bytes.h"
#include "util/error.h"

namespace ik::config { struct Config; struct KeyProvider; }
namespace ik::secrets { class SecretStorage; class SecretStorages; }

namespace ik::providers {

class InPlaceRotation;

struct DbKey {
    SecretBytes plaintext;  // 32 bytes
    Bytes wrapped;          // exactly what goes into encryption_keys.encrypted
};

class RootKeyProvider {
public:
    virtual ~RootKeyProvider() = default;

    virtual std::string kind() const = 0;         // native | awskms | vault
    virtual std::string root_key_id() const = 0;  // written to encryption_keys.root_key_id
    virtual std::string algorithm() const = 0;    // written to encryption_keys.algorithm
    // For messages: "native key file /root/.infra/key", "awskms key alias/infra at https://…".
    virtual std::string describe() const = 0;

    // Whether the root key exists (native: the secret is there; remote: the key is usable).
    // Throws ik::Error(provider) when the provider cannot be reached.
    virtual bool root_key_exists() = 0;
    // Creates the root key as the server would (native: 32 random bytes, stored 0600).
    virtual void create_root_key() = 0;

    // A new db key, wrapped exactly as the server wraps one.
    virtual DbKey generate_db_key() = 0;
    virtual Bytes wrap(const SecretBytes& db_key) = 0;
    // Does this root key open `wrapped`? The db key if it does, nullopt if `wrapped` is another
    // key's wrapping (or nothing this provider can read). Throws ik::Error(provider) only when it
    // cannot answer: the provider is unreachable, the root key missing or malformed.
    virtual std::optional<SecretBytes> try_unwrap(ByteView wrapped) = 0;
    // The same, for callers that need the key: ik::Error(wrong_key) when this key does not open it.
    virtual SecretBytes unwrap(ByteView wrapped);

    // Where a key kept as a secret lives (native: the storage holding secret `root_key_id()`), so a
    // rotation can stage keys beside it and a backup can carry it; nullptr for providers that keep
    // their keys themselves (KMS, Vault).
    virtual secrets::SecretStorage* key_storage() { return nullptr; }
    // The provider's own in-place rotation (Vault: a new key version; KMS: ReEncrypt), nullptr when
    // it has none. `to_key_id` names another key to move to, where the provider allows it
    // (ik::Error(usage) otherwise).
    virtual std::unique_ptr<InPlaceRotation> rotation(const std::optional<std::string>& to_key_id);

    // Extra facts for `verify` ("key state Enabled", "wrapped by key version 3"), one per line.
    virtual std::vector<std::string> status(ByteView wrapped) { (void)wrapped; return {}; }
};

// The db key row re-wrapped inside the provider, with what it takes to prove and explain it.
struct Rewrapped {
    Bytes wrapped;                 // the new encryption_keys.encrypted
    std::string algorithm;         // encryption_keys.algorithm for it
    std::string root_key_id;       // encryption_keys.root_key_id for it
    std::vector<std::string> lines;  // what the provider did ("vault transit key … rotated to version 4")
};

// A rotation the provider performs itself. The db key row keeps opening with the old key until the
// caller commits the new wrapping, so there is nothing to undo on our side if it stops half-way.
class InPlaceRotation {
public:
    virtual ~InPlaceRotation() = default;
    // Read-only: proves the key to rotate to is usable and says what `rewrap` will do.
    virtual std::vector<std::string> plan() = 0;
    // Re-wraps `wrapped` under the new key inside the provider (the db key never leaves it).
    virtual Rewrapped rewrap(ByteView wrapped) = 0;
    // The provider that opens what `rewrap` returned: the proof before commit.
    virtual RootKeyProvider& target() = 0;
    // What the operator must still do once the row is committed (e.g. name the new key in the config).
    virtual std::vector<std::string> after_commit() { return {}; }
};

// An unwrap attempt's answer: the db key, or the provider's own error (wrong_key when another
// key sealed it), for providers that learn which from the service.
using Unwrapped = std::variant<SecretBytes, Error>;
// The key; nullopt for a wrong_key answer (try_unwrap); any other error thrown.
std::optional<SecretBytes> key_or_nothing(Unwrapped answer);
// The key, or the error thrown in the provider's own words (unwrap).
SecretBytes key_or_throw(Unwrapped answer);

// Builds the provider named by cfg.db_encryption_key_provider for root key id cfg.db_encryption_key.
std::unique_ptr<RootKeyProvider> make(const config::Config& cfg, secrets::SecretStorages& storages);

}  // namespace ik::providers
