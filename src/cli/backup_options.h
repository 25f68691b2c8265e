// The options that say who opens a new backup, shared by `backup` and by every key change that
// writes one before its commit (`rotate-root --backup FILE`, `rotate-data-key --backup FILE`).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "crypto/age.h"
#include "ops/backup.h"
#include "util/passphrase.h"

namespace CLI { class App; class Option; }

namespace ik::cli {

struct RecipientFlags {
    std::vector<std::string> recipients, recipient_files;
    int work_factor = age::default_work_factor;
    passphrase::Source passphrase;
};

// -r/--recipient, -R/--recipients-file, --scrypt-work-factor, --allow-weak-passphrase and the
// passphrase options; returns them, so a command can make them need another option.
std::vector<CLI::Option*> add_recipient_options(CLI::App* sub, RecipientFlags& flags);

// Public keys from --recipient and --recipients-file, else the passphrase (asked twice).
ops::BackupRecipients recipients_from(RecipientFlags& flags);

// `--backup FILE` of a key change, and who opens it.
struct BackupFlags {
    std::optional<std::string> path;
    RecipientFlags to;
};

// --backup FILE and the recipient options, which need it. Returns --backup.
CLI::Option* add_backup_options(CLI::App* sub, BackupFlags& flags);

// What --backup asks for (the passphrase read now, unless recipients are given); nullopt without it.
// A dry run writes no backup, so it asks nothing: its target names the file only, for the plan's
// checks. Called before anything is locked: a prompt must not hold the database.
std::optional<ops::BackupTarget> backup_target_from(BackupFlags& flags, bool dry_run);

}  // namespace ik::cli
