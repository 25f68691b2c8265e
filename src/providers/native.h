// The native root key provider (docs/infra-format.md §3): 32 raw bytes in a secret storage seal the db key (docs/infra-format.md §5).
#pragma once

#include <memory>
#include <string>

#include "config/config.h"
#include "providers/root_key_provider.h"
#include "secrets/secret_store.h"

namespace ik::providers {

class NativeProvider : public RootKeyProvider {
public:
    // The root key is secret `root_key_id` of `storage`, which must outlive the provider.
    NativeProvider(secrets::SecretStorage& storage, std::string root_key_id);
    // The same over a storage the provider owns.
    NativeProvider(std::unique_ptr<secrets::SecretStorage> storage, std::string root_key_id);

    std::string kind() const override { return "native"; }
    std::string root_key_id() const override { return root_key_id_; }
    std::string algorithm() const override { return "aesgcm"; }
    std::string describe() const override { return "native root key " + root_key_location(); }

    bool root_key_exists() override;
    // Refuses (ik::Error(refused)) to replace an existing root key.
    void create_root_key() override;
    DbKey generate_db_key() override;
    Bytes wrap(const SecretBytes& db_key) override;
    std::optional<SecretBytes> try_unwrap(ByteView wrapped) override;
    // ik::Error(database) for a row that is no sealed payload, else as RootKeyProvider::unwrap.
    SecretBytes unwrap(ByteView wrapped) override;
    // Warns (stderr) about how the key is kept, e.g. a Helm-managed Secret without resource-policy keep.
    std::vector<std::string> status(ByteView wrapped) override;
    secrets::SecretStorage* key_storage() override { return &storage_; }

    // The root key itself; ik::Error(provider) when missing or not exactly 32 bytes.
    SecretBytes root_key();
    // Stores `root_key` (32 bytes), replacing any key there (file: 0600, atomically).
    void install_root_key(const SecretBytes& root_key);
    // Where the key lives, for messages: "file /root/.infra/sqlite3.db.key".
    std::string root_key_location() const;

private:
    void warn_if_readable_by_others();

    std::unique_ptr<secrets::SecretStorage> owned_;
    secrets::SecretStorage& storage_;
    std::string root_key_id_;
    bool warned_ = false;
};

// The provider the config names: storage `secretProvider` (default `file`), id cfg.db_encryption_key.
std::unique_ptr<NativeProvider> make_native(const config::Config& cfg, const config::KeyProvider& entry,
                                            secrets::SecretStorages& storages);
// A native root key in the file `path` (made absolute), as rotation and --from-key use it.
std::unique_ptr<NativeProvider> make_native_file(const std::string& path);
// A root key held only in memory (e.g. read from a backup); its root key id is empty.
std::unique_ptr<NativeProvider> make_native_in_memory(const SecretBytes& root_key);

}  // namespace ik::providers
