#include "cli/backup_options.h"

#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "util/error.h"
#include "util/files.h"

namespace ik::cli {

std::vector<CLI::Option*> add_recipient_options(CLI::App* sub, RecipientFlags& flags) {
    std::vector<CLI::Option*> added = {
        sub->add_option("-r,--recipient", flags.recipients,
                        "encrypt to an age1… (X25519) or \"ssh-ed25519 AAAA…\" public key instead of a passphrase "
                        "(repeatable)"),
        sub->add_option("-R,--recipients-file", flags.recipient_files,
                        "encrypt to every public key in FILE, one per line (repeatable)"),
        sub->add_option("--scrypt-work-factor", flags.work_factor, "passphrase cost: log2 of scrypt's N (default 16)")
            ->check(CLI::Range(10, age::max_work_factor)),
        sub->add_flag("--allow-weak-passphrase", flags.passphrase.allow_weak, "accept a passphrase under 12 characters"),
    };
    add_passphrase_options(sub, flags.passphrase);
    for (const char* name : {"--passphrase-file", "--passphrase-fd", "--passphrase-command"})
        added.push_back(sub->get_option(name));
    return added;
}

ops::BackupRecipients recipients_from(RecipientFlags& flags) {
    ops::BackupRecipients to;
    for (const auto& text : flags.recipients) to.recipients.push_back(age::parse_recipient(text));
    for (const auto& path : flags.recipient_files) {
        auto text = files::read_text(path);
        if (!text) fail(ExitCode::usage, "recipients file {} does not exist", path);
        for (auto& r : age::parse_recipients_file(*text, path)) to.recipients.push_back(std::move(r));
    }
    if (!to.recipients.empty()) return to;
    flags.passphrase.confirm = true;
    to.passphrase = passphrase::read(flags.passphrase);
    to.recipients.push_back(age::passphrase_recipient(*to.passphrase, flags.work_factor));
    return to;
}

CLI::Option* add_backup_options(CLI::App* sub, BackupFlags& flags) {
    auto* backup = sub->add_option("--backup", flags.path,
                                   "before the commit, write and re-open a backup of the new keys to FILE (a new file)");
    for (auto* option : add_recipient_options(sub, flags.to)) option->needs(backup);
    return backup;
}

std::optional<ops::BackupTarget> backup_target_from(BackupFlags& flags, bool dry_run) {
    if (!flags.path) return std::nullopt;
    if (dry_run) return ops::BackupTarget{*flags.path, {}};
    return ops::BackupTarget{*flags.path, recipients_from(flags.to)};
}

}  // namespace ik::cli
