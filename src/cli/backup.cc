// `infra-keys backup`: an age-encrypted, authenticated backup of the keys, proven before it is kept;
// `--check` and `--info` look at an existing one.
#include <cstdio>

#include <CLI/CLI.hpp>

#include "cli/backup_options.h"
#include "cli/command.h"
#include "crypto/age.h"
#include "cli/outcome.h"
#include "ops/backup.h"
#include "util/error.h"
#include "util/files.h"
#include "util/output.h"
#include "util/passphrase.h"

namespace ik::cli {

namespace {

void print(const ops::Report& report) {
    for (const auto& line : report.lines) out::result("{}", line);
}

}  // namespace

void add_identity_option(CLI::App* sub, std::vector<std::string>& identity_files) {
    sub->add_option("-i,--identity", identity_files,
                    "open with the age identity file or unencrypted OpenSSH ed25519 key FILE (repeatable)");
}

backup::Unlock unlock_from(const std::vector<std::string>& identity_files, passphrase::Source& source) {
    backup::Unlock unlock;
    for (const auto& path : identity_files) {
        auto text = files::read_secret(path);
        if (!text) fail(ExitCode::usage, "identity file {} does not exist", path);
        for (auto& identity : age::parse_identities(as_text(*text), path)) unlock.identities.push_back(std::move(identity));
    }
    if (unlock.identities.empty()) {
        source.allow_weak = true;  // the backup decides; a wrong one fails to decrypt
        unlock.passphrase = passphrase::read(source);
    }
    return unlock;
}

Command add_backup(CLI::App& app, const GlobalOptions& global) {
    auto* sub = app.add_subcommand("backup", "Write an age-encrypted backup of the db key, root key and key rows");
    struct Flags {
        std::string output = "infra-keys.backup";
        bool force = false;
        std::optional<std::string> check, info;
        bool offline = false;
        std::vector<std::string> identities;
        RecipientFlags to;
    };
    auto flags = std::make_shared<Flags>();
    auto* output = sub->add_option("-o,--output", flags->output, "where to write it, or - for stdout")->capture_default_str();
    auto* force = sub->add_flag("-f,--force", flags->force, "overwrite an existing file");
    add_recipient_options(sub, flags->to);
    auto* check = sub->add_option("--check", flags->check, "do not write: prove that backup FILE opens the live db key")
                      ->excludes(output)->excludes(force);
    sub->add_flag("--offline", flags->offline, "with --check: open and self-check FILE without any database");
    sub->add_option("--info", flags->info, "show what backup FILE tells without a secret or a database")
        ->excludes(output)->excludes(force)->excludes(check);
    add_identity_option(sub, flags->identities);
    add_json_flag(sub);

    return {sub, [&global, flags, sub] {
        if (flags->output == "-" && sub->count("--json") && !flags->check && !flags->info)
            fail(ExitCode::usage, "backup: --json cannot share stdout with --output -");
        if (flags->info) {
            print(ops::inspect_backup(*flags->info));
            return 0;
        }
        if (flags->offline && !flags->check) fail(ExitCode::usage, "--offline goes with --check FILE");
        if (flags->check && flags->offline) {
            ops::Report report = ops::check_backup_offline(*flags->check, unlock_from(flags->identities, flags->to.passphrase));
            print(report);
            return report.problems ? static_cast<int>(ExitCode::problems) : 0;
        }
        ops::Installation inst = open_installation(global);
        if (flags->check) {
            ops::Report report = ops::check_backup(inst, *flags->check, unlock_from(flags->identities, flags->to.passphrase));
            print(report);
            json_fields()["problems"] = report.problems;
            if (!report.fit.empty()) json_fields()["case"] = report.fit;
            return report.problems ? static_cast<int>(ExitCode::wrong_key) : 0;  // as restore says of the same backup
        }
        if (!flags->identities.empty()) fail(ExitCode::usage, "--identity opens a backup (--check, restore); to write one use --recipient");
        ops::BackupOptions options{flags->output, flags->force};
        ops::BackupRecipients to = recipients_from(flags->to);
        ops::Report report = ops::write_backup(inst, options, to);
        // With --output -, stdout carries the backup itself: the report goes to stderr, as results (-q hides them).
        for (const auto& line : report.lines)
            if (flags->output == "-") { if (out::level() != out::Level::quiet) std::fprintf(stderr, "%s\n", line.c_str()); }
            else out::result("{}", line);
        return 0;
    }};
}

}  // namespace ik::cli
