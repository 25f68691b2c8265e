// Crash-safe file writing and key-file permission checks. Errors are neutral (FileError): the
// caller knows what the file was (key, backup, passphrase, config, output) and picks the exit code.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <sys/types.h>

#include "util/bytes.h"

namespace ik::files {

// An I/O error on a file: the message names the file and the system's reason.
class FileError : public std::runtime_error {
public:
    FileError(const std::string& message, int error_number) : std::runtime_error(message), errno_(error_number) {}
    int error_number() const { return errno_; }  // EEXIST, ENOSPC, EROFS, …

private:
    int errno_;
};

// Writes `data` to a temp file beside `path` (mode `mode`), fsyncs it, renames it over `path`
// and fsyncs the directory: after a crash `path` holds either the old or the new contents.
// An existing file keeps its owner, group and mode; a new one gets the directory's owner and
// `mode`. A symlink is written through: the temp file goes beside the link's target and is
// renamed over it, so the link stays. Returns the path actually written (the target of a link).
std::string write_atomic(const std::string& path, ByteView data, mode_t mode = 0600);
// The same, but never replaces an existing file (link(2) instead of rename): FileError with
// EEXIST if `path` exists.
void write_new(const std::string& path, ByteView data, mode_t mode = 0600);
// Moves `from` over `to` (rename(2)), `from` taking the owner, group and mode `to` had; when `to`
// is a symlink, `from`'s contents are written through to its target instead, then `from` removed.
void replace(const std::string& from, const std::string& to);

// The temp files write_atomic/write_new left beside `path` when killed ("…/out.backup.tmp-1a2b3c4d").
std::vector<std::string> stale_temp_files_of(const std::string& path);

// nullopt if the file does not exist; FileError if it cannot be read.
std::optional<SecretBytes> read_secret(const std::string& path);
std::optional<std::string> read_text(const std::string& path);
// A token file (service account token, Vault Agent sink, secret id): read_secret without the
// surrounding whitespace and newline.
std::optional<SecretBytes> read_token(const std::string& path);

bool exists(const std::string& path);
// Where a symlink `path` points (made absolute against its directory); nullopt for anything else.
std::optional<std::string> symlink_target(const std::string& path);
bool group_or_world_accessible(const std::string& path);
void fsync_directory(const std::string& dir);
std::string directory_of(const std::string& path);
std::string absolute(const std::string& path);
// `~` and `~/…` expanded with `home`.
std::string expand_home(const std::string& path, const std::string& home);

}  // namespace ik::files
