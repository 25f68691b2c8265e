// Where a native root key rotation keeps its keys: slots beside the root key in the key's own
// secret storage (files beside a key file, data keys of the same Kubernetes Secret).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ops/installation.h"
#include "providers/native.h"
#include "secrets/secret_store.h"

namespace ik::ops {

// Slot names are secret names of the storage, derived from the root key's (KEY):
//   KEY                  the configured root key (dbEncryptionKey)
//   KEY.new              a new key written by rotate-root and not installed yet
//   KEY.<stamp>.retired  previous keys, kept until `rotate-root --retire-old`
// For a file that is /var/lib/infra/key.new; for Kubernetes, infra-x/__root_key.new is data key
// `__root_key.new` of Secret infra-x, so one conditional write can move it over `__root_key`.
class KeySlots {
public:
    KeySlots(secrets::SecretStorage& storage, std::string key) : storage_(storage), key_(std::move(key)) {}

    const std::string& key() const { return key_; }
    std::string next() const { return key_ + ".new"; }
    std::string retired(const std::string& stamp) const { return key_ + "." + stamp + ".retired"; }
    std::vector<std::string> retained();  // previous keys, newest first (the stamp sorts by time)
    std::string describe(const std::string& slot) const { return storage_.describe(slot); }

    std::optional<SecretBytes> read(const std::string& slot) { return storage_.get(slot); }
    bool holds(const std::string& slot) { return read(slot).has_value(); }
    // Claims a slot: ik::Error(refused) if something is there already.
    void create(const std::string& slot, const SecretBytes& key) { storage_.create(slot, key); }
    void remove(const std::string& slot) { storage_.remove(slot); }
    // Replaces what `slot` holds (a file keeps its owner, group and mode).
    void set(const std::string& slot, const SecretBytes& key) { storage_.set(slot, key); }
    // KEY.new over KEY, atomically where the storage can.
    void install_next() { storage_.rename(next(), key_); }
    // Temp files of a key-file write killed half-way (none in other storages), beside the key and,
    // for a key that is a symlink, beside its target (where writes through the link put them): key
    // copies nobody knows about, swept by every command that writes keys and listed by `status`.
    // Both return descriptions ("file /…/key.tmp-1a2b3c4d").
    std::vector<std::string> stale_temp_files();
    std::vector<std::string> remove_stale_temp_files();  // returns what it removed

    // The native provider whose root key is `slot`.
    std::unique_ptr<providers::NativeProvider> provider(const std::string& slot) const {
        return std::make_unique<providers::NativeProvider>(storage_, slot);
    }
    // The directory flocked while key files change; nullopt for a storage that guards its own
    // writes (Kubernetes: create and rename are conditional on the resourceVersion).
    std::optional<std::string> lock_directory() const;

private:
    std::vector<std::string> stale_temp_names();                  // in the storage
    std::vector<std::string> stale_temp_files_beside_link_target();  // paths

    secrets::SecretStorage& storage_;
    std::string key_;
};

// The slots when the configured provider is native (over files or Kubernetes); nullopt otherwise.
std::optional<KeySlots> key_slots(Installation& inst);

// Where the stale temp files beside the configured native key are ("file /…/key.tmp-1a2b3c4d");
// none for other providers or an installation that cannot be opened.
std::vector<std::string> stale_temp_files(const Target& target);

// "20261129T071516.123456Z": sorts by time, and fits in file names and Secret data keys.
std::string utc_stamp();

}  // namespace ik::ops
