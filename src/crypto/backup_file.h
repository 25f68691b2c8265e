// The infra-keys backup file v1 of infra-keys 0.1.0 (docs/backup-format.md): a readable header,
// then the key rows and (optionally) the root key, under a passphrase with Argon2id + AES-256/GCM.
// Still read so old backups restore; new backups are age files (crypto/backup_age.h).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/bytes.h"

namespace ik::backup {

constexpr int format_version = 1;
constexpr std::string_view magic_prefix = "infra-keys backup v";

// One live row of encryption_keys, copied verbatim.
struct KeyRowCopy {
    int64_t id = 0;
    int64_t key_id = 0;
    std::string name;
    Bytes encrypted;
    std::string algorithm;
    std::string root_key_id;
    std::string created_at;
    std::string updated_at;

    bool operator==(const KeyRowCopy&) const = default;
};

// Argon2id cost. memory in KiB, as Argon2 counts it.
struct KdfParams {
    size_t memory_kib = 0;
    size_t iterations = 0;
    size_t parallelism = 0;

    bool operator==(const KdfParams&) const = default;
};

// 96 MiB, t=3, p=1: about 0.55 s on one core of the development machine (bench/argon2).
KdfParams default_kdf();

// Bounds applied to a header before running Argon2, so a hostile file cannot demand 1 TiB of RAM.
constexpr size_t max_memory_kib = size_t{4} * 1024 * 1024;  // 4 GiB
constexpr size_t max_iterations = 100;
constexpr size_t max_parallelism = 64;

// Everything stored in the clear. All of it is authenticated (it is the GCM associated data).
struct Header {
    int format_version = backup::format_version;  // written by write()
    std::string created_at;                       // RFC 3339 UTC; write() fills it when empty
    std::string tool_version;                     // write() fills it when empty
    std::string provider_kind;                    // native, kubernetes, awskms, vault
    std::string root_key_id;
    std::map<std::string, std::string> provider_settings;  // non-secret options only
    std::string db_key_id;                        // 8 hex digits: the key id every value carries
    std::string db_key_sha256;                    // 64 hex digits: SHA-256 of the wrapped db key
    std::string database;                         // identity of the database, e.g. "sqlite:/path"
    bool contains_root_key = false;               // write() sets it from Contents
    KdfParams kdf = default_kdf();                // the caller may lower it (tests)
    Bytes kdf_salt;                               // write() draws 16 random bytes
    Bytes nonce;                                  // write() draws 12 random bytes
    size_t payload_size = 0;                      // ciphertext + tag bytes; written by write()
};

// A native root key other than the configured one: a previous key retained after a rotation.
struct RetainedKey {
    std::string id;  // where it lives: the retained key's slot (file path or Secret data key)
    SecretBytes key;

    bool operator==(const RetainedKey&) const = default;
};

struct Contents {
    std::optional<SecretBytes> root_key;  // native provider only
    std::vector<KeyRowCopy> rows;
    // Only in age backups (format 2); a v1 file has neither.
    std::vector<RetainedKey> retained_keys;
    std::optional<SecretBytes> db_key;    // the unwrapped db key that seals every value
};

// Returns the complete file (v1: only root_key and rows are written; tests and tools only). Fills salt, nonce, version, sizes (and created_at/tool_version if empty).
std::string write(const Header& header, const Contents& contents, const SecretBytes& passphrase);

// Validates the layout and header without the passphrase, for showing metadata.
// Throws ik::Error(ExitCode::backup) naming what is wrong.
Header read_header(std::string_view file_bytes);

// Decrypts and returns the contents; `out` (optional) receives the header.
// Throws ik::Error(ExitCode::backup) on any problem, including a wrong passphrase.
Contents open(std::string_view file_bytes, const SecretBytes& passphrase, Header* out = nullptr);

}  // namespace ik::backup
