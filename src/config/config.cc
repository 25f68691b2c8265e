// The server's options as the server computes them: defaults, then the YAML file, then INFRA_SERVER_*.
#include "config/config.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include <pwd.h>
#include <unistd.h>

#include <yaml-cpp/yaml.h>

#include "util/error.h"
#include "util/files.h"
#include "util/nearest.h"

namespace ik::config {
namespace {

constexpr const char* default_db_file = "~/.infra/sqlite3.db";
constexpr const char* default_db_encryption_key = "~/.infra/sqlite3.db.key";
constexpr const char* default_provider = "native";
// What the Helm chart puts under server.config when the values leave them out.
constexpr const char* helm_db_file = "/var/lib/infrahq/server/sqlite3.db";
constexpr const char* helm_db_encryption_key = "/var/lib/infrahq/server/sqlite3.db.key";
// docs/infra-format.md §3: the native provider over Kubernetes keeps its root key in Secret infra-x, key __root_key.
constexpr const char* kubernetes_default_root_key_id = "infra-x/__root_key";

const std::set<std::string> provider_kinds = {"native", "awskms", "vault"};
const std::set<std::string> secret_kinds = {"plaintext", "env",    "file",
                                            "kubernetes", "vault", "awsssm", "awssecretsmanager"};
const std::set<std::string> builtin_storages = {"plaintext", "env", "file", "kubernetes"};

std::string lower(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
    return text;
}

std::string node_type_name(const YAML::Node& node) {
    if (node.IsSequence()) return "a list";
    if (node.IsMap()) return "a map";
    if (node.IsNull()) return "nothing";
    return "a single value";
}

int line_of(const YAML::Node& node, int fallback = 0) {
    YAML::Mark mark = node.Mark();
    return mark.is_null() ? fallback : mark.line + 1;
}

// One `key: value` of a YAML map, its key lower-cased because the server matches keys case-insensitively.
struct Field {
    std::string key;
    std::string written_key;  // as in the file, for messages
    YAML::Node value;
    int line;
};

// Reading one document of one file; every error names the file, the line and the key path.
class Reader {
public:
    explicit Reader(std::string source) : source_(std::move(source)) {}

    [[noreturn]] void error(int line, const std::string& key, const std::string& what) const {
        if (line > 0) fail(ExitCode::usage, "config {} line {}: {}: {}", source_, line, key, what);
        fail(ExitCode::usage, "config {}: {}: {}", source_, key, what);
    }

    std::string where(int line) const { return fmt::format("config {} line {}", source_, line); }

    std::vector<Field> fields(const YAML::Node& map, const std::string& path, int line) const {
        if (!map.IsMap()) error(line_of(map, line), path, "expected a map, found " + node_type_name(map));
        std::vector<Field> out;
        for (auto it = map.begin(); it != map.end(); ++it) {
            if (!it->first.IsScalar()) error(line_of(it->first, line), path, "expected text keys");
            std::string key = it->first.Scalar();
            out.push_back({lower(key), key, it->second, line_of(it->first, line)});
        }
        return out;
    }

    // nullopt for `key:` with nothing after it, which leaves the default in place (as Go's YAML does).
    std::optional<std::string> scalar(const Field& field, const std::string& path) const {
        if (field.value.IsNull()) return std::nullopt;
        if (!field.value.IsScalar())
            error(field.line, path, "expected a single value, found " + node_type_name(field.value));
        return field.value.Scalar();
    }

private:
    std::string source_;
};

std::string join_path(const std::string& parent, const std::string& key) {
    return parent.empty() ? key : parent + "." + key;
}

// A `keys:` or `secrets:` entry before its kind is checked.
struct Entry {
    std::string kind;
    std::optional<std::string> name;
    Options options;
    int line = 0;
    int kind_line = 0;
    int name_line = 0;
    bool flat = false;  // has provider fields beside `kind` instead of under `config:`
};

void read_options(const Reader& reader, const YAML::Node& map, const std::string& path, int line, Options& into) {
    if (map.IsNull()) return;
    for (const Field& f : reader.fields(map, path, line)) {
        auto value = reader.scalar(f, join_path(path, f.written_key));
        into[f.key] = value.value_or("");
    }
}

Entry read_entry(const Reader& reader, const YAML::Node& node, const std::string& path, int fallback_line) {
    Entry entry;
    entry.line = line_of(node, fallback_line);
    Options flat;
    for (const Field& f : reader.fields(node, path, entry.line)) {
        std::string field_path = join_path(path, f.written_key);
        if (f.key == "kind") {
            entry.kind = reader.scalar(f, field_path).value_or("");
            entry.kind_line = line_of(f.value, f.line);
        } else if (f.key == "name") {
            entry.name = reader.scalar(f, field_path);
            entry.name_line = line_of(f.value, f.line);
        } else if (f.key == "config") {
            read_options(reader, f.value, field_path, f.line, entry.options);
        } else {
            flat[f.key] = reader.scalar(f, field_path).value_or("");
        }
    }
    if (entry.kind.empty()) reader.error(entry.line, path, "missing kind");
    entry.flat = !flat.empty();
    // The server reads only `config:`; when both shapes give a field, the nested one is what it sees.
    for (auto& [key, value] : flat) entry.options.emplace(key, value);
    return entry;
}

std::vector<YAML::Node> list_items(const Reader& reader, const Field& field, const std::string& path) {
    if (field.value.IsNull()) return {};
    if (!field.value.IsSequence())
        reader.error(line_of(field.value, field.line), path, "expected a list, found " + node_type_name(field.value));
    std::vector<YAML::Node> out;
    for (const auto& item : field.value) out.push_back(item);
    return out;
}

// Reads each entry of a `keys:` or `secrets:` list, refusing kinds outside `kinds` (named in the
// error as `expected`), and hands it to `take` with its path ("keys[2]").
void read_entries(const Reader& reader, const Field& field, const std::set<std::string>& kinds,
                  std::string_view what, std::string_view expected,
                  const std::function<void(Entry&, const std::string&)>& take) {
    auto items = list_items(reader, field, field.written_key);
    for (size_t i = 0; i < items.size(); ++i) {
        std::string path = fmt::format("{}[{}]", field.written_key, i);
        Entry entry = read_entry(reader, items[i], path, field.line);
        if (!kinds.count(entry.kind))
            reader.error(entry.kind_line, path + ".kind",
                         fmt::format("unknown {} kind \"{}\" (expected {})", what, entry.kind, expected));
        take(entry, path);
    }
}

void read_keys(const Reader& reader, const Field& field, Config& cfg) {
    read_entries(reader, field, provider_kinds, "key provider", "native, awskms or vault",
                 [&](Entry& entry, const std::string& path) {
                     if (entry.flat)
                         cfg.warnings.push_back(fmt::format(
                             "{}: {}: the Infra server ignores flat keys entries; nest fields under config:",
                             reader.where(entry.line), path));
                     cfg.keys.push_back({entry.kind, std::move(entry.options), entry.line});
                 });
}

void read_secrets(const Reader& reader, const Field& field, Config& cfg) {
    read_entries(reader, field, secret_kinds, "secret storage",
                 "plaintext, env, file, kubernetes, vault, awsssm or awssecretsmanager",
                 [&](Entry& entry, const std::string& path) {
                     std::string name = entry.name && !entry.name->empty() ? *entry.name : entry.kind;
                     for (const auto& earlier : cfg.secrets)
                         if (earlier.name == name)
                             reader.error(entry.name ? entry.name_line : entry.line, entry.name ? path + ".name" : path,
                                          fmt::format("duplicate secret storage name \"{}\" (also defined on line {})",
                                                      name, earlier.line));
                     cfg.secrets.push_back({entry.kind, name, std::move(entry.options), entry.line});
                 });
}

// Which options came from where, so a later check can name the file line or environment variable.
struct Origins {
    std::map<std::string, std::string> where;  // lower-cased option → "config F line N: dbPort"
    std::set<std::string> explicitly_set;
};

struct TextOption {
    const char* key;       // lower-cased YAML key
    const char* env;       // INFRA_SERVER_<UPPER_SNAKE>
    const char* name;      // camelCase, for messages
    std::string Config::*field;
};

const TextOption text_options[] = {
    {"dbfile", "INFRA_SERVER_DB_FILE", "dbFile", &Config::db_file},
    {"dbencryptionkey", "INFRA_SERVER_DB_ENCRYPTION_KEY", "dbEncryptionKey", &Config::db_encryption_key},
    {"dbencryptionkeyprovider", "INFRA_SERVER_DB_ENCRYPTION_KEY_PROVIDER", "dbEncryptionKeyProvider",
     &Config::db_encryption_key_provider},
    {"dbhost", "INFRA_SERVER_DB_HOST", "dbHost", &Config::db_host},
    {"dbname", "INFRA_SERVER_DB_NAME", "dbName", &Config::db_name},
    {"dbusername", "INFRA_SERVER_DB_USERNAME", "dbUsername", &Config::db_username},
    {"dbpassword", "INFRA_SERVER_DB_PASSWORD", "dbPassword", &Config::db_password},
    {"dbparameters", "INFRA_SERVER_DB_PARAMETERS", "dbParameters", &Config::db_parameters},
    {"dbconnectionstring", "INFRA_SERVER_DB_CONNECTION_STRING", "dbConnectionString", &Config::db_connection_string},
};
constexpr const char* port_env = "INFRA_SERVER_DB_PORT";

int parse_port(const std::string& text, const std::string& where) {
    int port = 0;
    bool digits = !text.empty() && text.size() <= 5 &&
                  std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c); });
    if (digits) port = std::stoi(text);
    if (!digits || port > 65535) fail(ExitCode::usage, "{}: expected a port number, found \"{}\"", where, text);
    return port;
}

// Every top-level option of the Infra server, v0.13.0 to v0.21.0 (its Options struct and the
// structs squashed into it). The server ignores any other key, so a misspelt one silently
// leaves a default in place; naming it here is the check the server does not make.
const std::vector<std::string> server_options = {
    "version", "tlsCache", "enableTelemetry", "enableSignup", "enableLogSampling", "sessionDuration",
    "sessionExtensionDeadline", "sessionInactivityTimeout", "dbFile", "dbEncryptionKey",
    "dbEncryptionKeyProvider", "dbHost", "dbPort", "dbName", "dbUsername", "dbPassword", "dbParameters",
    "dbConnectionString", "db", "redis", "emailAppDomain", "emailFromAddress", "emailFromName",
    "sendgridApiKey", "smtpServer", "baseDomain", "loginDomainPrefix", "googleClientID",
    "googleClientSecret", "defaultOrganizationDomain", "keys", "secrets", "providers", "grants", "users",
    "networkEncryption", "trustInitialClientPublicKey", "initialRootCACert", "initialRootCAPublicKey",
    "fullKeyRotationInDays", "addr", "ui", "tls", "api",
};

bool is_server_option(const std::string& key) {
    static const std::set<std::string> lowered = [] {
        std::set<std::string> out;
        for (const auto& option : server_options) out.insert(lower(option));
        return out;
    }();
    return lowered.count(key) != 0;
}

// Keys the server would ignore (a typo leaves its default in place) and keys given twice (only
// one of them counts): both are accepted, as the server accepts them, but named with their line.
void warn_unknown_and_duplicate(const Reader& reader, const std::vector<Field>& fields, Config& cfg) {
    std::map<std::string, int> first_line;
    for (const Field& f : fields) {
        if (auto [earlier, inserted] = first_line.emplace(f.key, f.line); !inserted)
            cfg.warnings.push_back(fmt::format("{}: {} is given twice (also on line {}); the last one is used",
                                               reader.where(f.line), f.written_key, earlier->second));
        if (is_server_option(f.key)) continue;
        auto suggestion = nearest(f.key, server_options);
        cfg.warnings.push_back(fmt::format("{}: {} is not an Infra server option; the server ignores it{}",
                                           reader.where(f.line), f.written_key,
                                           suggestion ? fmt::format(" (did you mean {}?)", *suggestion) : ""));
    }
}

void read_document(const Reader& reader, const std::vector<Field>& fields, Config& cfg, Origins& origins) {
    warn_unknown_and_duplicate(reader, fields, cfg);
    for (const Field& f : fields) {
        if (f.key == "keys") {
            read_keys(reader, f, cfg);
            continue;
        }
        if (f.key == "secrets") {
            read_secrets(reader, f, cfg);
            continue;
        }
        if (f.key == "dbport") {
            auto value = reader.scalar(f, f.written_key);
            if (!value) continue;
            cfg.db_port = parse_port(*value, fmt::format("{}: {}", reader.where(f.line), f.written_key));
            continue;
        }
        for (const auto& option : text_options) {
            if (f.key != option.key) continue;
            auto value = reader.scalar(f, f.written_key);
            if (!value) break;
            cfg.*option.field = *value;
            origins.where[option.key] = fmt::format("{}: {}", reader.where(f.line), f.written_key);
            origins.explicitly_set.insert(option.key);
        }
        // Every other server option (addr, tls, identities, …) is none of infra-keys' business.
    }
}

const Field* find_field(const std::vector<Field>& fields, const std::string& key) {
    for (const auto& f : fields)
        if (f.key == key) return &f;
    return nullptr;
}

// A Helm values file holds the server options under server.config; nullopt for a plain config file.
std::optional<YAML::Node> helm_server_config(const Reader& reader, const YAML::Node& root) {
    auto top = reader.fields(root, "(top level)", 1);
    const Field* server = find_field(top, "server");
    if (!server || !server->value.IsMap()) return std::nullopt;
    auto under_server = reader.fields(server->value, "server", server->line);
    const Field* config = find_field(under_server, "config");
    if (!config) return std::nullopt;
    if (config->value.IsNull()) return YAML::Node(YAML::NodeType::Map);
    if (!config->value.IsMap())
        reader.error(config->line, "server.config", "expected a map, found " + node_type_name(config->value));
    return config->value;
}

void read_helm_values(const Reader& reader, const YAML::Node& server_config, Config& cfg, Origins& origins) {
    std::vector<Field> kept;
    for (Field& f : reader.fields(server_config, "server.config", 1)) {
        if (f.key == "keys") {
            cfg.warnings.push_back(fmt::format("{}: server.config.{}: the Helm chart drops key provider entries; "
                                               "ignoring them (Helm installs run native over a file)",
                                               reader.where(f.line), f.written_key));
            continue;
        }
        kept.push_back(std::move(f));
    }
    read_document(reader, kept, cfg, origins);
    if (!origins.explicitly_set.count("dbfile")) cfg.db_file = helm_db_file;
    if (!origins.explicitly_set.count("dbencryptionkey")) {
        cfg.db_encryption_key = helm_db_encryption_key;
        origins.explicitly_set.insert("dbencryptionkey");
    }
}

YAML::Node parse_yaml(const std::string& text, const std::string& source) {
    try {
        return YAML::Load(text);
    } catch (const YAML::Exception& e) {
        int line = e.mark.is_null() ? 0 : e.mark.line + 1;
        fail(ExitCode::usage, "config {} line {}: malformed YAML: {}", source, line, e.msg);
    }
}

void apply_environment(const Environment& env, Config& cfg, Origins& origins) {
    for (const auto& option : text_options) {
        auto value = env(option.env);
        if (!value) continue;
        cfg.*option.field = *value;
        cfg.overrides.push_back(option.env);
        origins.where[option.key] = fmt::format("environment {}", option.env);
        origins.explicitly_set.insert(option.key);
    }
    if (auto port = env(port_env)) {
        cfg.db_port = parse_port(*port, fmt::format("environment {}", port_env));
        cfg.overrides.push_back(port_env);
    }
}

std::string home_directory(const Environment& env) {
    if (auto home = env("HOME"); home && !home->empty()) return *home;
    if (const passwd* pw = ::getpwuid(::getuid()); pw && pw->pw_dir) return pw->pw_dir;
    return "/";
}

// The kind of the storage a native provider's `secretProvider` names: a `secrets:` entry, else a built-in.
std::string storage_kind(const Config& cfg, const std::string& name) {
    for (const auto& s : cfg.secrets)
        if (s.name == name) return s.kind;
    return builtin_storages.count(name) ? name : "";
}

bool file_storage_has_base_path(const Config& cfg, const std::string& name) {
    for (const auto& s : cfg.secrets)
        if (s.name == name) return !s.get("path").empty();
    return false;
}

// The root key id as the native provider will use it.
// The server makes dbEncryptionKey absolute even for KMS and Vault ids (docs/infra-format.md §1), which only
// works because those providers ignore what the path looks like. We mirror it only where it
// means something — native over a file storage with no base path — and keep every other id
// (a KMS alias, a transit key name, a Kubernetes OBJECT/KEY) exactly as written, because
// infra-keys hands the id to the provider and an absolutized alias would name a different key.
void settle_root_key_id(Config& cfg, const Origins& origins) {
    // Made absolute, an empty path would name the working directory: no provider has a key there.
    if (cfg.db_encryption_key.empty()) {
        auto where = origins.where.find("dbencryptionkey");
        throw Error(ExitCode::usage,
                    fmt::format("{} is empty",
                                where == origins.where.end() ? std::string("dbEncryptionKey") : where->second),
                    fmt::format("name the root key there, or leave dbEncryptionKey out for the server's default ({})",
                                default_db_encryption_key));
    }
    KeyProvider provider = cfg.active_provider();
    if (provider.kind != "native") return;
    std::string storage = provider.get("secretprovider", "file");
    std::string kind = storage_kind(cfg, storage);
    bool is_default = !origins.explicitly_set.count("dbencryptionkey");
    if (kind == "file" && !file_storage_has_base_path(cfg, storage)) {
        cfg.db_encryption_key = files::absolute(files::expand_home(cfg.db_encryption_key, cfg.home));
    } else if (kind == "kubernetes" && is_default) {
        cfg.db_encryption_key = kubernetes_default_root_key_id;
    }
}

void check_provider_name(const Config& cfg, const Origins& origins) {
    if (provider_kinds.count(cfg.db_encryption_key_provider)) return;
    auto where = origins.where.find("dbencryptionkeyprovider");
    fail(ExitCode::usage, "{}: unknown key provider \"{}\" (expected native, awskms or vault)",
         where == origins.where.end() ? std::string("dbEncryptionKeyProvider") : where->second,
         cfg.db_encryption_key_provider);
}

Config defaults(const Environment& env) {
    Config cfg;
    cfg.home = home_directory(env);
    cfg.db_file = default_db_file;
    cfg.db_encryption_key = default_db_encryption_key;
    cfg.db_encryption_key_provider = default_provider;
    return cfg;
}

Config finish(Config cfg, const Environment& env, Origins& origins) {
    apply_environment(env, cfg, origins);
    check_provider_name(cfg, origins);
    if (!cfg.db_file.empty()) cfg.db_file = files::absolute(files::expand_home(cfg.db_file, cfg.home));
    settle_root_key_id(cfg, origins);
    return cfg;
}

bool yaml_true(const std::string& value) {
    std::string v = lower(value);
    return v == "true" || v == "yes" || v == "on" || v == "1";
}

}  // namespace

std::string KeyProvider::get(const std::string& lower_key, const std::string& fallback) const {
    auto it = options.find(lower_key);
    return it == options.end() || it->second.empty() ? fallback : it->second;
}

std::string SecretStorage::get(const std::string& lower_key, const std::string& fallback) const {
    auto it = options.find(lower_key);
    return it == options.end() || it->second.empty() ? fallback : it->second;
}

bool SecretStorage::flag(const std::string& lower_key) const { return yaml_true(get(lower_key)); }

KeyProvider Config::active_provider() const {
    if (!provider_kinds.count(db_encryption_key_provider))
        fail(ExitCode::usage, "unknown key provider \"{}\" (expected native, awskms or vault)",
             db_encryption_key_provider);
    // The server keeps providers in a map keyed by kind, so a later entry of a kind wins.
    for (auto it = keys.rbegin(); it != keys.rend(); ++it)
        if (it->kind == db_encryption_key_provider) return *it;
    return KeyProvider{db_encryption_key_provider, {}, 0};
}

Environment process_environment() {
    return [](const std::string& name) -> std::optional<std::string> {
        const char* value = std::getenv(name.c_str());
        if (!value) return std::nullopt;
        return std::string(value);
    };
}

std::optional<std::string> config_path(const std::optional<std::string>& flag, const Environment& env) {
    if (flag && !flag->empty()) return flag;
    for (const char* name : {"INFRA_KEYS_CONFIG", "INFRA_SERVER_CONFIG_FILE"})
        if (auto value = env(name); value && !value->empty()) return value;
    return std::nullopt;
}

Config parse(const std::string& yaml_text, const std::string& source_name, const Environment& env) {
    Config cfg = defaults(env);
    cfg.source = source_name;
    Origins origins;
    Reader reader(source_name);
    YAML::Node root = parse_yaml(yaml_text, source_name);
    // An empty ConfigMap mount reads as no options at all: the server would run on its defaults.
    if (root.IsNull())
        cfg.warnings.push_back(fmt::format("config {} is empty (no options, only comments or blank lines); "
                                           "the server's defaults apply", source_name));
    if (!root.IsNull()) {
        if (!root.IsMap()) reader.error(line_of(root, 1), "(top level)", "expected a map, found " + node_type_name(root));
        if (auto helm = helm_server_config(reader, root))
            read_helm_values(reader, *helm, cfg, origins);
        else
            read_document(reader, reader.fields(root, "(top level)", 1), cfg, origins);
    }
    return finish(std::move(cfg), env, origins);
}

Config load(const std::optional<std::string>& path, const Environment& env) {
    if (!path) {
        Origins origins;
        return finish(defaults(env), env, origins);
    }
    std::error_code ignored;
    if (std::filesystem::is_directory(*path, ignored))
        throw Error(ExitCode::usage, fmt::format("config {} is a directory, not a config file", *path),
                    "name the file inside it, e.g. --config " + (std::filesystem::path(*path) / "infra.yaml").string());
    std::ifstream in(*path, std::ios::binary);
    if (!in) {
        if (!files::exists(*path)) fail(ExitCode::usage, "config file {} does not exist", *path);
        fail(ExitCode::usage, "config file {} cannot be read", *path);
    }
    std::ostringstream text;
    text << in.rdbuf();
    return parse(text.str(), *path, env);
}

}  // namespace ik::config
