// `backup` and `restore`: the db key, the root key (native) and the key rows in an age file for a
// passphrase or public keys, each proven against the live database before anything is written.
#pragma once

#include <memory>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "crypto/backup_age.h"
#include "ops/db_key.h"
#include "ops/installation.h"

namespace ik::ops {

struct BackupOptions {
    std::string output;  // a path, or "-" for stdout
    bool force = false;  // overwrite an existing file
};

// Who can open a new backup: one passphrase (it stands alone, as age requires), or public keys.
struct BackupRecipients {
    std::vector<std::unique_ptr<age::Recipient>> recipients;
    std::optional<SecretBytes> passphrase;  // set when `recipients` is its scrypt recipient
};

// `--backup FILE` of a key change: where the backup of the changed keys goes and who opens it.
struct BackupTarget {
    std::string path;  // never "-", never an existing file
    BackupRecipients to;
};

struct Report {
    std::vector<std::string> lines;
    bool nothing_to_do = false;
    bool problems = false;  // checks ran and found a mismatch (exit 1)
    std::string fit;        // restore: how the backup stands to the database (exact, database_newer, …)
};

// Writes the backup atomically (0600), then re-reads the file and proves it matches the database.
// With output "-", the file goes to stdout and `Report.lines` should go to stderr.
Report write_backup(Installation& inst, const BackupOptions& options, const BackupRecipients& to);

// Writes a backup of exactly `contents` for `to` at `path` (0600, atomically; over an existing file
// only with `force`), then re-opens the file on disk — with the passphrase, or by its file key
// when only public keys were given — and proves it holds that key material; ik::Error(backup)
// otherwise. For every command that must not leave a key in one place only (e.g. a new root key
// saved before a rotation commits). Returns what the file on disk opened to.
backup::Opened write_verified_backup(const std::string& path, bool force, const backup::Metadata& meta,
                                     const backup::Contents& contents, const BackupRecipients& to);

// The root key a backup of this installation holds: the native root key, nullopt for providers
// that keep their keys.
std::optional<SecretBytes> root_key_to_back_up(Installation& inst);

// `--backup FILE` of a key change (rotate-root, rotate-data-key): the one way every key change keeps
// a new key from existing in one place only. Made in the plan, so that a dry run predicts its
// refusals; written and re-opened just before the commit; taken back if the commit did not happen.
class KeyChangeBackup {
public:
    // Refuses "-" (usage), an existing file (refused), a directory that cannot take the file
    // (backup, as the write would fail).
    KeyChangeBackup(Installation& inst, const BackupTarget& target);

    // Writes and re-opens a backup of the keys as they will be once `next` (the dbkey row as the
    // change will commit it, with its db key) commits, `root_key` being the native root key that
    // wraps it then (nullopt for providers that keep their keys). ik::Error(backup) when it cannot
    // be written or does not re-open to those keys. Returns the lines to print.
    std::vector<std::string> write(const OpenDbKey& next, const std::optional<SecretBytes>& root_key);

    // The error to report for `cause`, a failure of the key change. When the commit did not happen
    // the file holds keys nobody uses, which would only mislead: it goes. When it happened or
    // cannot be ruled out (`maybe_committed`), it stays, and the error says how to tell.
    Error undo(const Error& cause, bool maybe_committed) const;

private:
    Installation& inst_;
    const BackupTarget& target_;
    bool written_ = false;
};

// Opens a backup and proves, writing nothing, that it opens the live database's db key.
Report check_backup(Installation& inst, const std::string& path, const backup::Unlock& unlock);

// Opens a backup without any database and checks it against itself: its root key unwraps its
// dbkey row into its db key, key ids, hashes and fingerprints agree.
Report check_backup_offline(const std::string& path, const backup::Unlock& unlock);

// What a backup file tells without a secret or a database (`backup --info`).
Report inspect_backup(const std::string& path);

// What an opened backup says about itself.
std::vector<std::string> describe(const backup::Metadata& meta);

struct RestoreOptions {
    bool dry_run = false;
    bool force = false;        // replace a different root key (kept as PATH.replaced-<time>)
    bool with_db_key = false;  // insert the backup's key rows into a database that has none
    bool server_stopped = false;
    std::function<void(const std::string&)> on_step;  // each step line as it happens
};

Report restore(Installation& inst, const std::string& path, const backup::Unlock& unlock, const RestoreOptions& options);

// Reads a whole backup file ("-" for stdin); throws ik::Error(backup) if absent or unreadable.
std::string read_backup_file(const std::string& path);

}  // namespace ik::ops
