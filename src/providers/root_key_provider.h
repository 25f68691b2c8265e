// The root key provider interface (docs/infra-format.md §3): what wraps and unwraps the db key.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "util/bytes.h"

namespace ik::config { struct Config; struct KeyProvider; }
namespace ik::secrets { class SecretStorages; }

namespace ik::providers {

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
    // Throws ik::Error(wrong_key) when this root key does not open `wrapped`,
    // ik::Error(provider) when the provider is unreachable or the root key is missing/malformed.
    virtual SecretBytes unwrap(ByteView wrapped) = 0;

    // Extra facts for `verify` ("key state Enabled", "wrapped by key version 3"), one per line.
    virtual std::vector<std::string> status(ByteView wrapped) { (void)wrapped; return {}; }
};

// Builds the provider named by cfg.db_encryption_key_provider for root key id cfg.db_encryption_key.
std::unique_ptr<RootKeyProvider> make(const config::Config& cfg, secrets::SecretStorages& storages);

}  // namespace ik::providers
