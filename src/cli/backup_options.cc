#include "cli/backup_options.h"

#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "util/error.h"
#include "util/files.h"

namespace ik::cli {
namespace {

constexpr const char* recipient_options[] = {"--recipient", "--recipients-file", "--scrypt-work-factor",
                                             "--allow-weak-passphrase", "--passphrase-file", "--passphrase-fd",
                                             "--passphrase-command"};

std::string read_recipients_file(const std::string& path) {
    auto text = files::read_text(path);
    if (!text) fail(ExitCode::usage, "recipients file {} does not exist", path);
    return *text;
}

}  // namespace

void add_backup_recipient_options(CLI::App* sub, BackupRecipientFlags& flags) {
    sub->add_option("-r,--recipient", flags.recipients,
                    "encrypt to an age1… (X25519) or \"ssh-ed25519 AAAA…\" public key instead of a passphrase (repeatable)");
    sub->add_option("-R,--recipients-file", flags.recipient_files,
                    "encrypt to every public key in FILE, one per line (repeatable)");
    sub->add_option("--scrypt-work-factor", flags.work_factor, "passphrase cost: log2 of scrypt's N (default 16)")
        ->check(CLI::Range(10, age::max_work_factor));
    sub->add_flag("--allow-weak-passphrase", flags.passphrase.allow_weak, "accept a passphrase under 12 characters");
    add_passphrase_options(sub, flags.passphrase);
}

ops::BackupRecipients recipients_from(BackupRecipientFlags& flags) {
    ops::BackupRecipients to;
    for (const auto& text : flags.recipients) to.recipients.push_back(age::parse_recipient(text));
    for (const auto& path : flags.recipient_files)
        for (auto& r : age::parse_recipients_file(read_recipients_file(path), path)) to.recipients.push_back(std::move(r));
    if (!to.recipients.empty()) return to;
    flags.passphrase.confirm = true;
    to.passphrase = passphrase::read(flags.passphrase);
    to.recipients.push_back(age::passphrase_recipient(*to.passphrase, flags.work_factor));
    return to;
}

bool backup_recipient_options_given(const CLI::App* sub) {
    for (const char* name : recipient_options)
        if (sub->count(name) > 0) return true;
    return false;
}

}  // namespace ik::cli
