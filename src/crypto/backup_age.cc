#include "crypto/backup_age.h"

#include <ctime>

#include <botan/base64.h>
#include <botan/exceptn.h>
#include <fmt/chrono.h>
#include <nlohmann/json.hpp>

#include "crypto/fingerprint.h"
#include "util/text.h"

#ifndef INFRA_KEYS_VERSION
#define INFRA_KEYS_VERSION "unknown"
#endif

namespace ik::backup {
namespace {

// JSON whose every string (keys, hex of key bytes, the dumped text) is zeroed when freed.
using SecretString = std::basic_string<char, std::char_traits<char>, Botan::secure_allocator<char>>;
using SecretJson = nlohmann::basic_json<std::map, std::vector, SecretString>;

[[noreturn]] void fail_document(std::string message) { throw Error(ExitCode::backup, std::move(message)); }

SecretString str(std::string_view text) { return SecretString(text.begin(), text.end()); }

SecretString hex(const SecretBytes& bytes) {
    constexpr char digits[] = "0123456789abcdef";
    SecretString out;
    for (uint8_t b : bytes) {
        out.push_back(digits[b >> 4]);
        out.push_back(digits[b & 15]);
    }
    return out;
}

std::optional<SecretBytes> unhex(const SecretString& text) {
    auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        return -1;
    };
    if (text.size() % 2 != 0) return std::nullopt;
    SecretBytes out;
    for (size_t i = 0; i < text.size(); i += 2) {
        int high = nibble(text[i]), low = nibble(text[i + 1]);
        if (high < 0 || low < 0) return std::nullopt;
        out.push_back(static_cast<uint8_t>(high << 4 | low));
    }
    return out;
}

SecretJson key_entry(std::string_view role, std::string_view id, const SecretBytes& key) {
    SecretJson entry;
    entry["role"] = str(role);
    entry["id"] = str(id);
    entry["fingerprint"] = str(crypto::root_key_fingerprint(key));
    entry["key"] = hex(key);
    return entry;
}

SecretJson row_entry(const KeyRowCopy& row) {
    SecretJson entry;
    entry["id"] = row.id;
    entry["key_id"] = row.key_id;
    entry["name"] = str(row.name);
    entry["encrypted"] = str(Botan::base64_encode(row.encrypted));
    entry["algorithm"] = str(row.algorithm);
    entry["root_key_id"] = str(row.root_key_id);
    entry["created_at"] = str(row.created_at);
    entry["updated_at"] = str(row.updated_at);
    return entry;
}

// ---- reading, every field checked and named ----------------------------------------------------

const SecretJson& member(const SecretJson& object, std::string_view path, std::string_view name) {
    if (!object.is_object() || !object.contains(str(name)))
        fail_document(fmt::format("backup document field {} is missing", path));
    return object.at(str(name));
}

std::string text_of(const SecretJson& object, std::string_view path, std::string_view name) {
    const SecretJson& value = member(object, path, name);
    if (!value.is_string()) fail_document(fmt::format("backup document field {} is not a string", path));
    const auto& s = value.get_ref<const SecretString&>();
    return std::string(s.begin(), s.end());
}

SecretBytes secret_hex_of(const SecretJson& object, std::string_view path, std::string_view name) {
    const SecretJson& value = member(object, path, name);
    auto bytes = value.is_string() ? unhex(value.get_ref<const SecretString&>()) : std::nullopt;
    if (!bytes) fail_document(fmt::format("backup document field {} is not lowercase hex", path));
    return *bytes;
}

int64_t integer_of(const SecretJson& object, std::string_view path, std::string_view name) {
    const SecretJson& value = member(object, path, name);
    if (!value.is_number_integer()) fail_document(fmt::format("backup document field {} is not an integer", path));
    return value.get<int64_t>();
}

const SecretJson& array_of(const SecretJson& object, std::string_view path, std::string_view name) {
    const SecretJson& value = member(object, path, name);
    if (!value.is_array()) fail_document(fmt::format("backup document field {} is not an array", path));
    return value;
}

KeyRowCopy row_from(const SecretJson& entry, size_t index) {
    std::string at = fmt::format("key_rows[{}]", index);
    KeyRowCopy row;
    row.id = integer_of(entry, at + ".id", "id");
    row.key_id = integer_of(entry, at + ".key_id", "key_id");
    row.name = text_of(entry, at + ".name", "name");
    std::string encrypted = text_of(entry, at + ".encrypted", "encrypted");
    try {
        auto decoded = Botan::base64_decode(encrypted, false);
        row.encrypted.assign(decoded.begin(), decoded.end());
    } catch (const Botan::Exception&) {
        fail_document(fmt::format("backup document field {}.encrypted is not base64", at));
    }
    row.algorithm = text_of(entry, at + ".algorithm", "algorithm");
    row.root_key_id = text_of(entry, at + ".root_key_id", "root_key_id");
    row.created_at = text_of(entry, at + ".created_at", "created_at");
    row.updated_at = text_of(entry, at + ".updated_at", "updated_at");
    return row;
}

// A root key entry, after checking it is 32 bytes and matches its own fingerprint.
std::pair<std::string, SecretBytes> key_from(const SecretJson& entry, size_t index, std::string& role) {
    std::string at = fmt::format("root_keys[{}]", index);
    role = text_of(entry, at + ".role", "role");
    std::string id = text_of(entry, at + ".id", "id");
    SecretBytes key = secret_hex_of(entry, at + ".key", "key");
    if (key.size() != 32) fail_document(fmt::format("backup document field {}.key is {} bytes; expected 32", at, key.size()));
    if (text_of(entry, at + ".fingerprint", "fingerprint") != crypto::root_key_fingerprint(key))
        fail_document(fmt::format("backup document field {}.fingerprint does not match its key", at));
    return {id, key};
}

std::string utc_now() { return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", fmt::gmtime(std::time(nullptr))); }

// ---- v1 files ---------------------------------------------------------------------------------

bool is_v1(std::string_view file) { return file.starts_with(magic_prefix); }

Metadata metadata_of(const Header& h) {
    Metadata m;
    m.format = fmt::format("{}{}", magic_prefix, h.format_version);
    m.format_version = h.format_version;
    m.created_at = h.created_at;
    m.tool_version = h.tool_version;
    m.provider_kind = h.provider_kind;
    m.root_key_id = h.root_key_id;
    m.provider_settings = h.provider_settings;
    m.database = h.database;
    m.db_key_id = h.db_key_id;
    m.db_key_sha256 = h.db_key_sha256;
    m.argon2 = h.kdf;
    return m;
}

std::string describe_stanza(const age::Stanza& s) {
    if (s.type == "scrypt" && s.args.size() == 2)
        return fmt::format("passphrase (scrypt, work factor {})", s.args[1]);
    if (s.type == "ssh-ed25519" && !s.args.empty()) return fmt::format("ssh-ed25519 key with tag {}", s.args[0]);
    if (s.type == "X25519") return "X25519 key (age1…; the file does not say which)";
    return fmt::format("{} (a recipient type infra-keys cannot open)", s.type);
}

// JSON strings are UTF-8, and a value in another encoding (a path) could only be carried changed,
// while a root key id must come back byte for byte: such a value is refused, by name.
void refuse_what_json_cannot_carry(const Metadata& meta, const Contents& contents) {
    std::vector<std::pair<std::string, std::string_view>> fields = {
        {"the database (installation.database)", meta.database},
        {"the root key id (provider.root_key_id)", meta.root_key_id},
        {"the provider (provider.kind)", meta.provider_kind},
        {"the creation time (created_at)", meta.created_at}};
    for (const auto& [name, value] : meta.provider_settings) {
        fields.emplace_back("a provider setting name (provider.settings)", name);
        fields.emplace_back(fmt::format("provider setting {}", printable(name)), value);
    }
    for (const auto& retained : contents.retained_keys) fields.emplace_back("a retained root key id", retained.id);
    for (const auto& row : contents.rows) {
        fields.emplace_back(fmt::format("encryption_keys row {} name", row.id), row.name);
        fields.emplace_back(fmt::format("encryption_keys row {} algorithm", row.id), row.algorithm);
        fields.emplace_back(fmt::format("encryption_keys row {} root_key_id", row.id), row.root_key_id);
    }
    for (const auto& [name, value] : fields)
        if (!valid_utf8(value))
            throw Error(ExitCode::backup,
                        fmt::format("cannot write backup: {} \"{}\" is not valid UTF-8, which a backup (JSON) cannot "
                                    "carry unchanged", name, printable(value)),
                        "name the database and the key by UTF-8 paths (move them, update the config), then back up");
}

}  // namespace

SecretBytes to_document(const Metadata& meta, const Contents& contents) {
    SecretJson doc;
    doc["format"] = str(document_format);
    doc["format_version"] = document_version;
    doc["created_at"] = str(meta.created_at);
    doc["tool_version"] = str(meta.tool_version);
    doc["installation"]["database"] = str(meta.database);
    doc["provider"]["kind"] = str(meta.provider_kind);
    doc["provider"]["root_key_id"] = str(meta.root_key_id);
    doc["provider"]["settings"] = SecretJson::object();
    for (const auto& [name, value] : meta.provider_settings) doc["provider"]["settings"][str(name)] = str(value);
    doc["root_key_fingerprint"] =
        contents.root_key ? SecretJson(str(crypto::root_key_fingerprint(*contents.root_key))) : SecretJson(nullptr);
    doc["db_key"]["key_id"] = str(meta.db_key_id);
    doc["db_key"]["wrapped_sha256"] = str(meta.db_key_sha256);
    doc["db_key"]["key"] = contents.db_key ? SecretJson(hex(*contents.db_key)) : SecretJson(nullptr);
    doc["root_keys"] = SecretJson::array();
    if (contents.root_key) doc["root_keys"].push_back(key_entry("current", meta.root_key_id, *contents.root_key));
    for (const auto& retained : contents.retained_keys)
        doc["root_keys"].push_back(key_entry("retained", retained.id, retained.key));
    doc["key_rows"] = SecretJson::array();
    for (const auto& row : contents.rows) doc["key_rows"].push_back(row_entry(row));
    refuse_what_json_cannot_carry(meta, contents);
    SecretString text = doc.dump(2, ' ', true);
    text.push_back('\n');
    return SecretBytes(text.begin(), text.end());
}

Opened from_document(const SecretBytes& json) {
    SecretJson doc;
    try {
        doc = SecretJson::parse(json.begin(), json.end());
    } catch (const SecretJson::exception&) {
        fail_document("the backup's contents are not valid JSON");
    }
    if (!doc.is_object() || text_of(doc, "format", "format") != document_format)
        fail_document("the age file is not an infra-keys backup (its contents have another format)");
    int64_t version = integer_of(doc, "format_version", "format_version");
    if (version > document_version)
        fail_document(fmt::format("backup format version {} is newer than this infra-keys understands (max {})", version,
                                  document_version));
    if (version != document_version)
        fail_document(fmt::format("backup document field format_version is {}; expected {}", version, document_version));

    Opened out;
    Metadata& m = out.meta;
    m.format = "age";
    m.format_version = document_version;
    m.created_at = text_of(doc, "created_at", "created_at");
    m.tool_version = text_of(doc, "tool_version", "tool_version");
    m.database = text_of(member(doc, "installation", "installation"), "installation.database", "database");
    const SecretJson& provider = member(doc, "provider", "provider");
    m.provider_kind = text_of(provider, "provider.kind", "kind");
    m.root_key_id = text_of(provider, "provider.root_key_id", "root_key_id");
    const SecretJson& settings = member(provider, "provider.settings", "settings");
    if (!settings.is_object()) fail_document("backup document field provider.settings is not an object");
    for (const auto& [name, value] : settings.items())
        m.provider_settings[std::string(name.begin(), name.end())] =
            text_of(settings, fmt::format("provider.settings.{}", std::string(name.begin(), name.end())),
                    std::string_view(name.data(), name.size()));
    const SecretJson& db_key = member(doc, "db_key", "db_key");
    m.db_key_id = text_of(db_key, "db_key.key_id", "key_id");
    m.db_key_sha256 = text_of(db_key, "db_key.wrapped_sha256", "wrapped_sha256");
    if (!member(db_key, "db_key.key", "key").is_null()) {
        out.contents.db_key = secret_hex_of(db_key, "db_key.key", "key");
        if (out.contents.db_key->size() != 32) fail_document("backup document field db_key.key is not 32 bytes");
    }

    const SecretJson& keys = array_of(doc, "root_keys", "root_keys");
    for (size_t i = 0; i < keys.size(); ++i) {
        std::string role;
        auto [id, key] = key_from(keys[i], i, role);
        if (role == "current" && i == 0) out.contents.root_key = key;
        else if (role == "retained") out.contents.retained_keys.push_back({id, key});
        else fail_document(fmt::format("backup document field root_keys[{}].role is '{}'", i, role));
    }
    const SecretJson& fingerprint = member(doc, "root_key_fingerprint", "root_key_fingerprint");
    if (out.contents.root_key) {
        m.root_key_fingerprint = text_of(doc, "root_key_fingerprint", "root_key_fingerprint");
        if (m.root_key_fingerprint != crypto::root_key_fingerprint(*out.contents.root_key))
            fail_document("backup document field root_key_fingerprint does not match root_keys[0]");
    } else if (!fingerprint.is_null()) {
        fail_document("backup document field root_key_fingerprint is set but the backup holds no root key");
    }
    const SecretJson& rows = array_of(doc, "key_rows", "key_rows");
    for (size_t i = 0; i < rows.size(); ++i) out.contents.rows.push_back(row_from(rows[i], i));
    return out;
}

std::string write_age(const Metadata& meta, const Contents& contents, const std::vector<const age::Recipient*>& recipients,
                      SecretBytes* file_key) {
    Metadata m = meta;
    if (m.created_at.empty()) m.created_at = utc_now();
    if (m.tool_version.empty()) m.tool_version = INFRA_KEYS_VERSION;
    SecretBytes document = to_document(m, contents);
    from_document(document);  // a document we write is always one we read
    return age::encrypt(recipients, document, file_key);
}

Opened open_any(std::string_view file, const Unlock& unlock) {
    if (is_v1(file) || !age::looks_like_age(file)) {
        if (!unlock.passphrase) {
            read_header(file);  // says "not an infra-keys backup" before asking for a passphrase
            throw Error(ExitCode::usage, "this backup (infra-keys backup v1) opens only with a passphrase");
        }
        Header header;
        Contents contents = open(file, *unlock.passphrase, &header);
        return {metadata_of(header), std::move(contents)};
    }
    std::vector<std::unique_ptr<age::Identity>> passphrase;
    std::vector<const age::Identity*> identities;
    for (const auto& identity : unlock.identities) identities.push_back(identity.get());
    if (unlock.passphrase) {
        passphrase.push_back(age::passphrase_identity(*unlock.passphrase));
        identities.push_back(passphrase.back().get());
    }
    SecretBytes plaintext;
    try {
        plaintext = age::decrypt(file, identities);
    } catch (const age::FormatError& e) {
        if (e.failure() != age::Failure::no_match) throw;
        throw Error(ExitCode::backup, unlock.identities.empty()
                                          ? "wrong passphrase, or the backup is not encrypted to a passphrase"
                                          : "no given identity opens this backup (backup --info FILE lists who can)");
    }
    return from_document(plaintext);
}

std::vector<std::string> inspect(std::string_view file) {
    if (is_v1(file)) {
        Metadata m = metadata_of(read_header(file));
        return {
            fmt::format("format      {} (Argon2id m={} KiB t={} p={}, AES-256/GCM)", m.format, m.argon2->memory_kib,
                        m.argon2->iterations, m.argon2->parallelism),
            "recipients  passphrase",
            fmt::format("created     {} by infra-keys {}", m.created_at, m.tool_version),
            fmt::format("provider    {} (root key id {})", m.provider_kind, m.root_key_id),
            fmt::format("db key      key id {}, wrapped sha256 {}", m.db_key_id, m.db_key_sha256),
            fmt::format("database    {}", m.database),
        };
    }
    if (!age::looks_like_age(file)) fail_document("not an infra-keys backup (neither an age file nor infra-keys backup v1)");
    std::string binary = age::looks_armored(file) ? age::dearmor(file) : std::string(file);
    age::Header header = age::parse_header(binary);
    std::vector<std::string> lines = {fmt::format("format      age v1{} (https://age-encryption.org/v1)",
                                                  age::looks_armored(file) ? ", armored" : "")};
    for (const auto& stanza : header.stanzas) lines.push_back("recipient   " + describe_stanza(stanza));
    lines.push_back("contents    encrypted: provider, root key fingerprint and key rows show after opening "
                    "(backup --check FILE --offline)");
    return lines;
}

}  // namespace ik::backup
