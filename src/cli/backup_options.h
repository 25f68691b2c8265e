// Who can open a backup a command writes: the options `backup` and every command that writes a
// backup of new key material (`rotate-data-key --backup FILE`) share.
#pragma once

#include <string>
#include <vector>

#include "crypto/age.h"
#include "ops/backup.h"
#include "util/passphrase.h"

namespace CLI { class App; }

namespace ik::cli {

struct BackupRecipientFlags {
    std::vector<std::string> recipients;       // -r/--recipient
    std::vector<std::string> recipient_files;  // -R/--recipients-file
    int work_factor = age::default_work_factor;  // --scrypt-work-factor
    passphrase::Source passphrase;             // the passphrase options, --allow-weak-passphrase
};

// -r/--recipient, -R/--recipients-file, --scrypt-work-factor, --allow-weak-passphrase and the
// passphrase options.
void add_backup_recipient_options(CLI::App* sub, BackupRecipientFlags& flags);

// Public keys from --recipient and --recipients-file, else the passphrase (asked twice).
ops::BackupRecipients recipients_from(BackupRecipientFlags& flags);

// Whether any of those options was given (on `sub`), e.g. to refuse them without --backup.
bool backup_recipient_options_given(const CLI::App* sub);

}  // namespace ik::cli
