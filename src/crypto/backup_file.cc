#include "crypto/backup_file.h"

#include <charconv>
#include <chrono>
#include <ctime>

#include <botan/aead.h>
#include <botan/base64.h>
#include <botan/exceptn.h>
#include <botan/pwdhash.h>
#include <fmt/chrono.h>
#include <nlohmann/json.hpp>

#include "crypto/random.h"
#include "util/error.h"

#ifndef INFRA_KEYS_VERSION
#define INFRA_KEYS_VERSION "unknown"
#endif

namespace ik::backup {
namespace {

using nlohmann::json;

constexpr std::string_view kdf_algorithm = "Argon2id";
constexpr std::string_view cipher_algorithm = "AES-256/GCM";
constexpr size_t key_size = 32;
constexpr size_t tag_size = 16;
constexpr size_t nonce_size = 12;
constexpr size_t salt_size = 16;
constexpr size_t min_salt_size = 16;
constexpr size_t max_salt_size = 64;
constexpr size_t max_payload_size = size_t{256} * 1024 * 1024;
constexpr uint8_t flag_root_key = 0x01;

[[noreturn]] void fail_backup(std::string message) { throw Error(ExitCode::backup, std::move(message)); }

std::string magic_line() { return fmt::format("{}{}\n", magic_prefix, format_version); }

// ---- header JSON ----------------------------------------------------------------------------

std::string b64(ByteView bytes) { return Botan::base64_encode(bytes.data(), bytes.size()); }

json header_to_json(const Header& h) {
    json settings = json::object();
    for (const auto& [name, value] : h.provider_settings) settings[name] = value;
    return json{
        {"format_version", h.format_version},
        {"created_at", h.created_at},
        {"tool_version", h.tool_version},
        {"provider", {{"kind", h.provider_kind}, {"root_key_id", h.root_key_id}, {"settings", settings}}},
        {"db_key", {{"key_id", h.db_key_id}, {"sha256", h.db_key_sha256}}},
        {"database", h.database},
        {"contains_root_key", h.contains_root_key},
        {"kdf",
         {{"algorithm", kdf_algorithm},
          {"memory_kib", h.kdf.memory_kib},
          {"iterations", h.kdf.iterations},
          {"parallelism", h.kdf.parallelism},
          {"salt", b64(h.kdf_salt)}}},
        {"cipher", {{"algorithm", cipher_algorithm}, {"nonce", b64(h.nonce)}}},
        {"payload_size", h.payload_size},
    };
}

// Looks up a dotted path ("kdf.salt") so every error names the field exactly as written in the file.
const json& field(const json& root, std::string_view path) {
    const json* at = &root;
    size_t start = 0;
    while (start <= path.size()) {
        size_t dot = path.find('.', start);
        std::string name(path.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start));
        if (!at->is_object() || !at->contains(name)) fail_backup(fmt::format("backup header field {} is missing", path));
        at = &(*at)[name];
        if (dot == std::string_view::npos) break;
        start = dot + 1;
    }
    return *at;
}

std::string string_field(const json& root, std::string_view path) {
    const json& value = field(root, path);
    if (!value.is_string()) fail_backup(fmt::format("backup header field {} is not a string", path));
    return value.get<std::string>();
}

size_t unsigned_field(const json& root, std::string_view path) {
    const json& value = field(root, path);
    if (!value.is_number_unsigned()) fail_backup(fmt::format("backup header field {} is not a non-negative integer", path));
    return value.get<size_t>();
}

bool bool_field(const json& root, std::string_view path) {
    const json& value = field(root, path);
    if (!value.is_boolean()) fail_backup(fmt::format("backup header field {} is not true or false", path));
    return value.get<bool>();
}

Bytes base64_field(const json& root, std::string_view path) {
    std::string text = string_field(root, path);
    try {
        Botan::secure_vector<uint8_t> decoded = Botan::base64_decode(text, false);
        if (Botan::base64_encode(decoded) == text) return Bytes(decoded.begin(), decoded.end());
    } catch (const Botan::Exception&) {
    }
    fail_backup(fmt::format("backup header field {} is not valid base64", path));
}

void require_text(const json& root, std::string_view path, std::string_view expected) {
    std::string found = string_field(root, path);
    if (found != expected)
        fail_backup(fmt::format("backup header field {} is '{}'; this infra-keys supports only '{}'", path, found, expected));
}

bool is_hex(std::string_view text, size_t size) {
    return text.size() == size && text.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

void check_kdf_bounds(const KdfParams& kdf) {
    if (kdf.parallelism < 1 || kdf.parallelism > max_parallelism)
        fail_backup(fmt::format("backup header field kdf.parallelism is {}; allowed 1..{}", kdf.parallelism, max_parallelism));
    if (kdf.iterations < 1 || kdf.iterations > max_iterations)
        fail_backup(fmt::format("backup header field kdf.iterations is {}; allowed 1..{}", kdf.iterations, max_iterations));
    // Argon2 needs at least 8 KiB per lane.
    if (kdf.memory_kib < 8 * kdf.parallelism || kdf.memory_kib > max_memory_kib)
        fail_backup(fmt::format("backup header field kdf.memory_kib is {}; allowed {}..{}", kdf.memory_kib,
                                8 * kdf.parallelism, max_memory_kib));
}

Header header_from_json(const json& j) {
    if (!j.is_object()) fail_backup("backup header is not a JSON object");
    Header h;
    size_t version = unsigned_field(j, "format_version");
    if (version > static_cast<size_t>(format_version))
        fail_backup(fmt::format("backup format version {} is newer than this infra-keys understands (max {})", version,
                                format_version));
    if (version != static_cast<size_t>(format_version))
        fail_backup(fmt::format("backup header field format_version is {}; expected {}", version, format_version));
    h.format_version = format_version;
    h.created_at = string_field(j, "created_at");
    h.tool_version = string_field(j, "tool_version");
    h.provider_kind = string_field(j, "provider.kind");
    h.root_key_id = string_field(j, "provider.root_key_id");
    const json& settings = field(j, "provider.settings");
    if (!settings.is_object()) fail_backup("backup header field provider.settings is not an object");
    for (const auto& [name, value] : settings.items()) {
        if (!value.is_string()) fail_backup(fmt::format("backup header field provider.settings.{} is not a string", name));
        h.provider_settings[name] = value.get<std::string>();
    }
    h.db_key_id = string_field(j, "db_key.key_id");
    if (!is_hex(h.db_key_id, 8)) fail_backup("backup header field db_key.key_id is not 8 lowercase hex digits");
    h.db_key_sha256 = string_field(j, "db_key.sha256");
    if (!is_hex(h.db_key_sha256, 64)) fail_backup("backup header field db_key.sha256 is not 64 lowercase hex digits");
    h.database = string_field(j, "database");
    h.contains_root_key = bool_field(j, "contains_root_key");

    require_text(j, "kdf.algorithm", kdf_algorithm);
    h.kdf.memory_kib = unsigned_field(j, "kdf.memory_kib");
    h.kdf.iterations = unsigned_field(j, "kdf.iterations");
    h.kdf.parallelism = unsigned_field(j, "kdf.parallelism");
    check_kdf_bounds(h.kdf);
    h.kdf_salt = base64_field(j, "kdf.salt");
    if (h.kdf_salt.size() < min_salt_size || h.kdf_salt.size() > max_salt_size)
        fail_backup(fmt::format("backup header field kdf.salt is {} bytes; allowed {}..{}", h.kdf_salt.size(),
                                min_salt_size, max_salt_size));

    require_text(j, "cipher.algorithm", cipher_algorithm);
    h.nonce = base64_field(j, "cipher.nonce");
    if (h.nonce.size() != nonce_size)
        fail_backup(fmt::format("backup header field cipher.nonce is {} bytes; expected {}", h.nonce.size(), nonce_size));

    h.payload_size = unsigned_field(j, "payload_size");
    if (h.payload_size < tag_size || h.payload_size > max_payload_size)
        fail_backup(fmt::format("backup header field payload_size is {}; allowed {}..{}", h.payload_size, tag_size,
                                max_payload_size));
    return h;
}

// ---- file layout ----------------------------------------------------------------------------

// The three lines of a file: magic, header JSON, base64 payload. `authenticated` is lines 1–2.
struct Layout {
    Header header;
    std::string_view authenticated;
    std::string_view payload_line;  // without its newline
};

[[noreturn]] void fail_truncated() { fail_backup("backup is truncated"); }

// Returns the length of the magic line including its newline, after checking the version in it.
size_t check_magic(std::string_view file) {
    if (file.empty()) fail_backup("not an infra-keys backup (empty file)");
    std::string expected = magic_line();
    if (file.size() < expected.size() && expected.starts_with(file)) fail_truncated();
    if (!file.starts_with(magic_prefix)) fail_backup("not an infra-keys backup (bad magic)");

    size_t end = file.find('\n');
    std::string_view digits = file.substr(magic_prefix.size(), end == std::string_view::npos ? 12 : end - magic_prefix.size());
    unsigned long long version = 0;
    auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), version);
    bool all_digits = ec == std::errc() && ptr == digits.data() + digits.size() && !digits.empty() && digits[0] != '0';
    if (!all_digits) fail_backup("not an infra-keys backup (bad magic)");
    if (version > static_cast<unsigned long long>(format_version))
        fail_backup(fmt::format("backup format version {} is newer than this infra-keys understands (max {})", version,
                                format_version));
    if (end == std::string_view::npos) fail_truncated();
    return end + 1;
}

Layout parse_layout(std::string_view file) {
    size_t header_start = check_magic(file);
    size_t header_end = file.find('\n', header_start);
    if (header_end == std::string_view::npos) fail_truncated();

    json j;
    try {
        j = json::parse(file.substr(header_start, header_end - header_start));
    } catch (const json::exception&) {
        fail_backup("backup header (line 2) is not valid JSON");
    }
    Layout layout{header_from_json(j), file.substr(0, header_end + 1), {}};

    std::string_view rest = file.substr(header_end + 1);
    size_t encoded_size = (layout.header.payload_size + 2) / 3 * 4;
    if (rest.size() < encoded_size + 1) fail_truncated();
    if (rest.size() > encoded_size + 1) fail_backup("backup has unexpected data after the payload (modified?)");
    if (rest.back() != '\n') fail_backup("backup payload (line 3) does not end in a newline (modified?)");
    layout.payload_line = rest.substr(0, encoded_size);
    return layout;
}

Bytes decode_payload(std::string_view line, size_t expected_size) {
    try {
        Botan::secure_vector<uint8_t> decoded = Botan::base64_decode(line.data(), line.size(), false);
        // Re-encoding must give the same text: rejects non-canonical padding bits a flip could hide in.
        if (decoded.size() == expected_size && Botan::base64_encode(decoded) == line)
            return Bytes(decoded.begin(), decoded.end());
    } catch (const Botan::Exception&) {
    }
    fail_backup("backup payload (line 3) is not valid base64 (modified?)");
}

// ---- contents (the encrypted plaintext) -----------------------------------------------------

void put_u32(SecretBytes& out, uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(v >> shift));
}
void put_i64(SecretBytes& out, int64_t v) {
    auto u = static_cast<uint64_t>(v);
    for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(u >> shift));
}
void put_field(SecretBytes& out, ByteView field) {
    if (field.size() > UINT32_MAX) fail_backup("cannot write backup: a key row field is over 4 GiB");
    put_u32(out, static_cast<uint32_t>(field.size()));
    out.insert(out.end(), field.begin(), field.end());
}

SecretBytes serialize(const Contents& contents) {
    SecretBytes out;
    out.push_back(contents.root_key ? flag_root_key : 0);
    if (contents.root_key) put_field(out, *contents.root_key);
    put_u32(out, static_cast<uint32_t>(contents.rows.size()));
    for (const auto& row : contents.rows) {
        put_i64(out, row.id);
        put_i64(out, row.key_id);
        put_field(out, as_bytes(row.name));
        put_field(out, row.encrypted);
        put_field(out, as_bytes(row.algorithm));
        put_field(out, as_bytes(row.root_key_id));
        put_field(out, as_bytes(row.created_at));
        put_field(out, as_bytes(row.updated_at));
    }
    return out;
}

// Bounds-checked reader over the decrypted contents; authenticated data, but checked all the same.
class ContentsReader {
public:
    explicit ContentsReader(const SecretBytes& data) : data_(data) {}
    bool at_end() const { return offset_ == data_.size(); }

    uint8_t u8() { return take(1)[0]; }
    uint32_t u32() {
        ByteView b = take(4);
        return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
    }
    int64_t i64() {
        ByteView b = take(8);
        uint64_t v = 0;
        for (uint8_t byte : b) v = (v << 8) | byte;
        return static_cast<int64_t>(v);
    }
    ByteView field() { return take(u32()); }
    std::string text() { return std::string(as_text(field())); }

private:
    ByteView take(size_t size) {
        if (data_.size() - offset_ < size) fail_backup("backup contents are malformed (field runs past the end)");
        ByteView out = ByteView(data_).subspan(offset_, size);
        offset_ += size;
        return out;
    }
    const SecretBytes& data_;
    size_t offset_ = 0;
};

Contents deserialize(const SecretBytes& data) {
    ContentsReader in(data);
    Contents contents;
    uint8_t flags = in.u8();
    if ((flags & ~flag_root_key) != 0) fail_backup("backup contents are malformed (unknown flags)");
    if (flags & flag_root_key) {
        ByteView key = in.field();
        contents.root_key = SecretBytes(key.begin(), key.end());
    }
    uint32_t count = in.u32();
    for (uint32_t i = 0; i < count; ++i) {
        KeyRowCopy row;
        row.id = in.i64();
        row.key_id = in.i64();
        row.name = in.text();
        ByteView encrypted = in.field();
        row.encrypted.assign(encrypted.begin(), encrypted.end());
        row.algorithm = in.text();
        row.root_key_id = in.text();
        row.created_at = in.text();
        row.updated_at = in.text();
        contents.rows.push_back(std::move(row));
    }
    if (!in.at_end()) fail_backup("backup contents are malformed (unexpected bytes at the end)");
    return contents;
}

// ---- crypto ---------------------------------------------------------------------------------

SecretBytes derive_key(const SecretBytes& passphrase, const KdfParams& kdf, const Bytes& salt) {
    check_kdf_bounds(kdf);
    auto family = Botan::PasswordHashFamily::create_or_throw(std::string(kdf_algorithm));
    auto argon2 = family->from_params(kdf.memory_kib, kdf.iterations, kdf.parallelism);
    SecretBytes key(key_size);
    argon2->derive_key(key.data(), key.size(), reinterpret_cast<const char*>(passphrase.data()), passphrase.size(),
                       salt.data(), salt.size());
    return key;
}

std::unique_ptr<Botan::AEAD_Mode> cipher_for(Botan::Cipher_Dir direction, const SecretBytes& key,
                                             std::string_view authenticated, const Bytes& nonce) {
    auto cipher = Botan::AEAD_Mode::create_or_throw(std::string(cipher_algorithm), direction);
    cipher->set_key(key);
    // The whole header is associated data: any edit to metadata or KDF parameters fails the tag.
    cipher->set_associated_data(as_bytes(authenticated).data(), authenticated.size());
    cipher->start(nonce);
    return cipher;
}

std::string utc_now() { return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", fmt::gmtime(std::time(nullptr))); }

}  // namespace

KdfParams default_kdf() { return {96 * 1024, 3, 1}; }

std::string write(const Header& header, const Contents& contents, const SecretBytes& passphrase) {
    if (passphrase.empty()) throw Error(ExitCode::usage, "backup passphrase is empty");
    Header h = header;
    h.format_version = format_version;
    if (h.created_at.empty()) h.created_at = utc_now();
    if (h.tool_version.empty()) h.tool_version = INFRA_KEYS_VERSION;
    h.contains_root_key = contents.root_key.has_value();
    h.kdf_salt = crypto::random_bytes(salt_size);
    h.nonce = crypto::random_bytes(nonce_size);

    SecretBytes buffer = serialize(contents);
    h.payload_size = buffer.size() + tag_size;
    if (h.payload_size > max_payload_size) fail_backup(fmt::format("cannot write backup: contents exceed {} bytes", max_payload_size));

    std::string authenticated = magic_line();
    try {
        authenticated += header_to_json(h).dump(-1, ' ', true) + "\n";
    } catch (const json::exception&) {
        fail_backup("cannot write backup: a header value is not valid UTF-8");
    }
    // Round-trip through the reader so a header we write is always one we accept (e.g. KDF bounds).
    header_from_json(json::parse(std::string_view(authenticated).substr(magic_line().size())));

    SecretBytes key = derive_key(passphrase, h.kdf, h.kdf_salt);
    cipher_for(Botan::ENCRYPTION, key, authenticated, h.nonce)->finish(buffer);
    return authenticated + b64(buffer) + "\n";
}

Header read_header(std::string_view file_bytes) {
    Layout layout = parse_layout(file_bytes);
    decode_payload(layout.payload_line, layout.header.payload_size);
    return layout.header;
}

Contents open(std::string_view file_bytes, const SecretBytes& passphrase, Header* out) {
    Layout layout = parse_layout(file_bytes);
    Bytes ciphertext = decode_payload(layout.payload_line, layout.header.payload_size);
    const Header& h = layout.header;

    SecretBytes buffer(ciphertext.begin(), ciphertext.end());
    try {
        SecretBytes key = derive_key(passphrase, h.kdf, h.kdf_salt);
        cipher_for(Botan::DECRYPTION, key, layout.authenticated, h.nonce)->finish(buffer);
    } catch (const Botan::Invalid_Authentication_Tag&) {
        fail_backup("wrong passphrase or the backup was modified (authentication failed)");
    } catch (const Botan::Exception& e) {
        fail_backup(fmt::format("cannot decrypt backup: {}", e.what()));
    }
    Contents contents = deserialize(buffer);
    if (contents.root_key.has_value() != h.contains_root_key)
        fail_backup("backup header field contains_root_key disagrees with the contents");
    if (out) *out = h;
    return contents;
}

}  // namespace ik::backup
