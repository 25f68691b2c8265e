// The storages every server has (plaintext, env, file) and the rules shared by all storages.
#pragma once

#include <memory>
#include <string>

#include "config/config.h"
#include "secrets/secret_store.h"

namespace ik::secrets {

// The base64 options of a `secrets:` entry, as the server's secrets library reads them:
// `base64URLEncoded` and `base64Raw` pick the variant; any of the three turns decoding on.
enum class Encoding { none, std_padded, std_raw, url_padded, url_raw };
Encoding encoding_of(const config::SecretStorage& entry);
// Throws ik::Error(usage) naming `what` (never the value) when `text` is not valid for `encoding`.
SecretBytes decode(Encoding encoding, const SecretBytes& text, const std::string& what);
SecretBytes encode(Encoding encoding, const SecretBytes& value);

// Files: NAME is a path, joined to the `path` option when there is one. Written 0600 atomically.
class FileStorage : public SecretStorage {
public:
    explicit FileStorage(const config::SecretStorage& entry);
    std::string kind() const override { return "file"; }
    std::optional<SecretBytes> get(const std::string& name) override;
    void set(const std::string& name, const SecretBytes& value) override;
    void remove(const std::string& name) override;
    std::vector<std::string> names_with_prefix(const std::string& prefix) override;
    void rename(const std::string& from, const std::string& to) override;
    std::string describe(const std::string& name) const override;
    std::optional<std::string> file_of(const std::string& name) const override { return path_of(name); }
    // The file that holds secret `name`.
    std::string path_of(const std::string& name) const;

private:
    std::string base_;
    Encoding encoding_;
};

std::unique_ptr<SecretStorage> make_plaintext_storage(const config::SecretStorage& entry);
std::unique_ptr<SecretStorage> make_env_storage(const config::SecretStorage& entry, const config::Environment& env);
std::unique_ptr<SecretStorage> make_file_storage(const config::SecretStorage& entry);
// vault, awsssm, awssecretsmanager: exists so the config loads; any use is a clear usage error.
std::unique_ptr<SecretStorage> make_unsupported_storage(const config::SecretStorage& entry);

// A `kubernetes:` reference NAME as the server reads it: characters outside [-._a-zA-Z0-9/]
// become `_`, and exactly one `/` must separate OBJECT from KEY (else ik::Error(usage)).
std::string kubernetes_secret_name(const std::string& name);

}  // namespace ik::secrets
