// Constructors of the remote root key providers, each implemented in its own file.
#pragma once

#include <memory>

#include "config/config.h"
#include "providers/root_key_provider.h"
#include "secrets/secret_store.h"

namespace ik::providers {

// `entry` is the `keys:` entry of that kind (options lower-cased); `cfg.db_encryption_key` the key id.
std::unique_ptr<RootKeyProvider> make_awskms(const config::Config& cfg, const config::KeyProvider& entry,
                                             secrets::SecretStorages& storages);
std::unique_ptr<RootKeyProvider> make_vault(const config::Config& cfg, const config::KeyProvider& entry,
                                            secrets::SecretStorages& storages);

}  // namespace ik::providers
