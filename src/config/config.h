// The server's configuration as infra-keys needs it: YAML (plain or Helm values) + defaults + env.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace ik::config {

// Options of a `keys:` or `secrets:` entry, flat or nested under `config:`. Keys are stored
// lower-cased because the server matches YAML keys case-insensitively.
using Options = std::map<std::string, std::string>;

struct KeyProvider {
    std::string kind;  // native | awskms | vault
    Options options;   // e.g. "secretprovider", "endpoint", "region", "accesskeyid", "address", "token"
    int line = 0;      // 1-based line in the config file, 0 if not from a file
    std::string get(const std::string& lower_key, const std::string& fallback = {}) const;
};

struct SecretStorage {
    std::string kind;  // plaintext | env | file | kubernetes | vault | awsssm | awssecretsmanager
    std::string name;  // defaults to kind
    Options options;   // "base64", "base64urlencoded", "base64raw", "path", "namespace", ...
    int line = 0;
    std::string get(const std::string& lower_key, const std::string& fallback = {}) const;
    bool flag(const std::string& lower_key) const;  // YAML true/false
};

struct Config {
    std::string source;  // the file it came from, or "" for defaults only
    std::string home;    // the home directory `~` expanded to

    std::string db_file;
    std::string db_encryption_key;           // the root key id
    std::string db_encryption_key_provider;  // which `keys` entry wraps the db key
    std::string db_host, db_name, db_username, db_password /* a secret reference */, db_parameters;
    int db_port = 0;
    // v0.15.0+: a libpq connection string (key=value or URI); when set the server ignores dbHost…
    std::string db_connection_string;

    std::vector<KeyProvider> keys;
    std::vector<SecretStorage> secrets;
    std::vector<std::string> warnings;  // e.g. flat `keys:` entries the server itself ignores
    std::vector<std::string> overrides;  // the INFRA_SERVER_* variables that replaced a value, in order

    bool uses_postgres() const { return !db_host.empty() || !db_connection_string.empty(); }
    // The `keys` entry for db_encryption_key_provider, or a default native one.
    KeyProvider active_provider() const;
};

using Environment = std::function<std::optional<std::string>(const std::string&)>;
Environment process_environment();
// The variable's value, or `fallback` when it is unset or empty.
inline std::string env_or(const Environment& env, const std::string& name, const std::string& fallback = {}) {
    auto value = env(name);
    return value && !value->empty() ? *value : fallback;
}

// Which file to read: --config, else INFRA_KEYS_CONFIG, else INFRA_SERVER_CONFIG_FILE, else none.
std::optional<std::string> config_path(const std::optional<std::string>& flag, const Environment& env);

// Defaults, then the file (if any), then INFRA_SERVER_* overrides. Throws ik::Error(usage)
// naming file, line and key for malformed YAML, wrong types and unknown provider kinds.
Config load(const std::optional<std::string>& path, const Environment& env);
Config parse(const std::string& yaml_text, const std::string& source_name, const Environment& env);

}  // namespace ik::config
