// `backup` and `restore`: the root key (native) and the key rows in a passphrase-encrypted file,
// each proven against the live database before anything is written.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "crypto/backup_file.h"
#include "ops/installation.h"

namespace ik::ops {

struct BackupOptions {
    std::string output;  // a path, or "-" for stdout
    bool force = false;  // overwrite an existing file
    std::optional<backup::KdfParams> kdf;
};

struct Report {
    std::vector<std::string> lines;
    bool nothing_to_do = false;
    bool problems = false;  // checks ran and found a mismatch (exit 1)
};

// Writes the backup atomically (0600), then re-reads the file and proves it matches the database.
// With output "-", the file goes to stdout and `Report.lines` should go to stderr.
Report write_backup(Installation& inst, const BackupOptions& options, const SecretBytes& passphrase);

// Opens a backup and proves, writing nothing, that it opens the live database's db key.
Report check_backup(Installation& inst, const std::string& path, const SecretBytes& passphrase);

// Metadata lines of a backup, readable without the passphrase.
std::vector<std::string> describe(const backup::Header& header);

struct RestoreOptions {
    bool dry_run = false;
    bool force = false;        // replace a different root key (kept as PATH.replaced-<time>)
    bool with_db_key = false;  // insert the backup's key rows into a database that has none
    bool server_stopped = false;
    std::function<void(const std::string&)> on_step;  // each step line as it happens
};

Report restore(Installation& inst, const std::string& path, const SecretBytes& passphrase, const RestoreOptions& options);

// Reads a whole backup file ("-" for stdin); throws ik::Error(backup) if absent or unreadable.
std::string read_backup_file(const std::string& path);

}  // namespace ik::ops
