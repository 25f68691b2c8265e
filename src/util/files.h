// Crash-safe file writing and key-file permission checks.
#pragma once

#include <optional>
#include <string>

#include <sys/types.h>

#include "util/bytes.h"

namespace ik::files {

// Writes `data` to a temp file beside `path` (mode `mode`), fsyncs it, renames it over `path`
// and fsyncs the directory: after a crash `path` holds either the old or the new contents.
void write_atomic(const std::string& path, ByteView data, mode_t mode = 0600);
// The same, but never replaces an existing file (link(2) instead of rename): throws
// ik::Error(refused) if `path` exists.
void write_new(const std::string& path, ByteView data, mode_t mode = 0600);

// nullopt if the file does not exist; throws ik::Error(provider) if it cannot be read.
std::optional<SecretBytes> read_secret(const std::string& path);
std::optional<std::string> read_text(const std::string& path);
// A token file (service account token, Vault Agent sink, secret id): read_secret without the
// surrounding whitespace and newline.
std::optional<SecretBytes> read_token(const std::string& path);

bool exists(const std::string& path);
bool group_or_world_accessible(const std::string& path);
void fsync_directory(const std::string& dir);
std::string directory_of(const std::string& path);
std::string absolute(const std::string& path);
// `~` and `~/…` expanded with `home`.
std::string expand_home(const std::string& path, const std::string& home);

}  // namespace ik::files
