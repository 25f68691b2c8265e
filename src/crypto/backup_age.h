// Backups as age files (docs/backup-format.md, format 2): a JSON document encrypted to a
// passphrase or to public keys, and one reader for both it and the v1 files of infra-keys 0.1.0.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/age.h"
#include "crypto/backup_file.h"

namespace ik::backup {

constexpr int document_version = 2;
constexpr std::string_view document_format = "infra-keys backup";

// What a backup says about the installation it came from. In a v1 file it is the clear header;
// in an age file it is inside the encryption (age headers carry nothing else).
struct Metadata {
    std::string format;  // "age" or "infra-keys backup v1"
    int format_version = document_version;
    std::string created_at;    // RFC 3339 UTC; write_age() fills it when empty
    std::string tool_version;  // write_age() fills it when empty
    std::string provider_kind;
    std::string root_key_id;
    std::map<std::string, std::string> provider_settings;  // non-secret options only
    std::string database;        // identity of the database, e.g. "sqlite:/path"
    std::string db_key_id;       // 8 hex digits: the key id every value carries
    std::string db_key_sha256;   // SHA-256 of the wrapped db key (the dbkey row's `encrypted`)
    std::string root_key_fingerprint;  // of the native root key; empty for remote providers and v1
    std::optional<KdfParams> argon2;   // v1 only
};

struct Opened {
    Metadata meta;
    Contents contents;
};

// How a backup may be opened: a passphrase (v1, or an age scrypt stanza) and/or age identities.
struct Unlock {
    std::optional<SecretBytes> passphrase;
    std::vector<std::unique_ptr<age::Identity>> identities;
};

// The plaintext of an age backup, built and parsed in secure memory. Fills the fingerprints.
SecretBytes to_document(const Metadata& meta, const Contents& contents);
Opened from_document(const SecretBytes& json);

// An age file for `recipients`; `file_key` (optional) receives its file key, so the writer can
// prove the file opens without holding a private key.
std::string write_age(const Metadata& meta, const Contents& contents, const std::vector<const age::Recipient*>& recipients,
                      SecretBytes* file_key = nullptr);

// Opens an age backup or a v1 backup. Throws ik::Error(backup) for every problem with the file,
// ik::Error(usage) when the file needs a secret that `unlock` lacks.
Opened open_any(std::string_view file, const Unlock& unlock);

// What the file tells without any secret: format, recipients (type, ssh tag, scrypt work factor);
// for a v1 file its clear header. Throws ik::Error(backup) when it is neither format.
std::vector<std::string> inspect(std::string_view file);

}  // namespace ik::backup
