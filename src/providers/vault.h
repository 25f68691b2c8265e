// The `vault` root key provider: the db key is encrypted by a Vault transit key.
#pragma once

#include <string>
#include <variant>
#include <vector>

#include "config/config.h"
#include "net/http.h"
#include "providers/root_key_provider.h"
#include "secrets/secret_store.h"
#include "util/secret_json.h"
#include "util/error.h"

namespace ik::providers {

struct VaultSettings {
    std::string address;                     // https://vault.example.com:8200
    SecretString token;                      // X-Vault-Token; never in a message
    std::string namespace_name;              // X-Vault-Namespace, empty for none
    std::string transit_mount = "/transit";  // with one leading slash, no trailing one
    std::string key_name = "__infra-root";   // the transit key = the root key id
    net::TlsOptions tls;                     // caBundle of the entry, else VAULT_CACERT
};

// From the `keys:` entry (`address`, `token` secret reference, `namespace`, `transitMount`, `caBundle`),
// falling back on VAULT_ADDR, VAULT_TOKEN, VAULT_NAMESPACE and VAULT_CACERT.
VaultSettings vault_settings(const config::Config& cfg, const config::KeyProvider& entry,
                             secrets::SecretStorages& storages, const config::Environment& env);

// The transit key name for a configured root key id: "__infra-root" when empty. The server makes
// dbEncryptionKey absolute (docs/infra-format.md §1) and transit names cannot contain '/', so of a path only
// the last segment is the name.
std::string transit_key_name(const std::string& root_key_id);

// Vault's answers, parsed without a server (tests/fuzz): the `data` object of an answer, else
// ik::Error(provider) naming `where`; a string field of it; the `errors` list joined with "; "
// (empty for a plain 404).
SecretJson vault_answer_data(std::string_view body, const std::string& where);
SecretString vault_string_field(const SecretJson& data, const char* field, const std::string& where);
std::string vault_errors(std::string_view body);

class VaultProvider : public RootKeyProvider {
public:
    explicit VaultProvider(VaultSettings settings);

    std::string kind() const override { return "vault"; }
    std::string root_key_id() const override { return settings_.key_name; }
    std::string algorithm() const override { return "aes256-gcm96"; }
    std::string describe() const override;

    bool root_key_exists() override;
    void create_root_key() override;
    DbKey generate_db_key() override;
    Bytes wrap(const SecretBytes& db_key) override;
    std::optional<SecretBytes> try_unwrap(ByteView wrapped) override;
    SecretBytes unwrap(ByteView wrapped) override;
    std::vector<std::string> status(ByteView wrapped) override;
    std::unique_ptr<InPlaceRotation> rotation(const std::optional<std::string>& to_key_id) override;

    struct KeyInfo {
        int latest_version = 0;
        int min_decryption_version = 0;
    };
    // Adds a new version of the transit key; new encryptions use it.
    void rotate_key();
    // Re-encrypts `wrapped` under the latest key version inside Vault (the plaintext never leaves it).
    Bytes rewrap(ByteView wrapped);
    KeyInfo read_key();

private:
    struct Answer {
        long status = 0;
        SecretString body;
        std::string errors;  // Vault's `errors`, joined, for a non-2xx answer
        std::string where;   // "https://vault…/v1/transit/decrypt/… POST", for messages
    };
    Answer send(const std::string& method, const std::string& path, SecretString body, bool idempotent);
    // The ik::Error for a failed answer: wrong_key when another key sealed the ciphertext.
    Error failure(const Answer& answer) const;
    // Decrypt of a wrapped db key: the key, or Vault's error (wrong_key when another key sealed it).
    Unwrapped decrypt(ByteView wrapped);
    // Sends to {address}/v1{mount}/{path}; returns the JSON `data` object of a 2xx answer, or
    // nullopt for 404 when `missing_ok`. Throws ik::Error with Vault's own `errors` otherwise.
    std::optional<SecretString> call(const std::string& method, const std::string& path, SecretString body,
                                     bool missing_ok = false, bool idempotent = true);

    VaultSettings settings_;
    net::Client client_;
};

}  // namespace ik::providers
