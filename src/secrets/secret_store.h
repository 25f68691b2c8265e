// Secret storages (docs/infra-format.md §2) and the resolution of `KIND:NAME` secret references.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "util/bytes.h"

namespace ik::secrets {

// One storage kind: plaintext, env, file, kubernetes. Values may be raw bytes (a root key).
class SecretStorage {
public:
    virtual ~SecretStorage() = default;
    virtual std::string kind() const = 0;
    // Returns nullopt when the secret does not exist; throws ik::Error when unreachable.
    virtual std::optional<SecretBytes> get(const std::string& name) = 0;
    // Creates or replaces the secret (key files: 0600 via temp + fsync + rename + dir fsync).
    virtual void set(const std::string& name, const SecretBytes& value) = 0;
    // Deletes the secret if it exists. Storages that cannot (env, plaintext) refuse.
    virtual void remove(const std::string& name);
    // Names of existing secrets that start with `prefix` (a key rotation's companions: for files
    // the directory entries beside a path, for Kubernetes the data keys of the same Secret).
    virtual std::vector<std::string> names_with_prefix(const std::string& prefix);
    // Creates the secret only if it does not exist yet, else ik::Error(refused): how a key
    // rotation claims its slot, so two rotations cannot both write one. The default checks then
    // writes, which is enough for storages whose callers hold a lock (files: the directory flock).
    virtual void create(const std::string& name, const SecretBytes& value);
    // Moves secret `from` over `to` in one step where the storage can (file: rename(2);
    // Kubernetes: one conditional write of the Secret holding both). The default copies then
    // deletes, so a crash may leave both holding the same value.
    virtual void rename(const std::string& from, const std::string& to);
    // Where the secret lives, for messages: "file /root/.infra/key", "env VAULT_TOKEN".
    virtual std::string describe(const std::string& name) const = 0;
    // What an operator should be told about how the secret is kept (a Helm-managed Kubernetes
    // Secret that `helm uninstall` would delete); reads the storage.
    virtual std::vector<std::string> warnings(const std::string& name) {
        (void)name;
        return {};
    }
    // What most likely replaced a secret that no longer opens what it sealed, as a hint.
    virtual std::string wrong_key_hint(const std::string& name) const {
        (void)name;
        return {};
    }
    // The file that holds secret `name` in storages of files (to lock its directory, check its
    // permissions); nullopt in others.
    virtual std::optional<std::string> file_of(const std::string& name) const { (void)name; return std::nullopt; }
};

// All storages of a config: the built-ins plus the `secrets:` entries (which may redefine them).
class SecretStorages {
public:
    SecretStorages(const config::Config& cfg, const config::Environment& env);
    SecretStorage& named(const std::string& name);  // throws ik::Error(usage) if unknown
    bool has(const std::string& name) const;

    // "env:VAR" → the variable; "plain" → itself. Missing → ik::Error(usage) naming the reference.
    SecretBytes resolve(const std::string& reference);
    std::string resolve_text(const std::string& reference);

    void add(const std::string& name, std::unique_ptr<SecretStorage> storage);

private:
    std::map<std::string, std::unique_ptr<SecretStorage>> storages_;
};

// The storage a `secrets:` entry (or a built-in one: {kind, kind, {}, 0}) describes; a
// `kubernetes` storage contacts the cluster only when first used.
std::unique_ptr<SecretStorage> make_storage(const config::SecretStorage& entry, const config::Environment& env);

}  // namespace ik::secrets
