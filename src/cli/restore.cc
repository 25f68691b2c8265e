// `infra-keys restore`: puts a backup's keys back, only where they fit the database.
#include <filesystem>

#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "cli/outcome.h"
#include "ops/backup.h"
#include "util/error.h"
#include "util/output.h"
#include "util/passphrase.h"

namespace ik::cli {

Command add_restore(CLI::App& app, const GlobalOptions& global) {
    auto* sub = app.add_subcommand("restore", "Make the installation open again from a backup: its root key, the dbkey row re-wrapped if the database was rotated since or is older, the key rows with --with-db-key");
    struct Flags {
        std::string file;
        ops::RestoreOptions options;
        passphrase::Source passphrase;
        std::vector<std::string> identities;
    };
    auto flags = std::make_shared<Flags>();
    sub->add_option("FILE", flags->file, "the backup file, or - for stdin")->required();
    sub->add_flag("-n,--dry-run", flags->options.dry_run, "show exactly what would change and change nothing");
    sub->add_flag("-f,--force", flags->options.force, "replace a different root key (the replaced one is kept beside it)");
    sub->add_flag("--with-db-key", flags->options.with_db_key, "insert the backup's key rows into a database without them");
    sub->add_flag("--server-stopped", flags->options.server_stopped, "assert the Infra server is stopped");
    add_passphrase_options(sub, flags->passphrase);
    add_identity_option(sub, flags->identities);
    add_json_flag(sub);

    return {sub, [&global, flags] {
        std::error_code ignored;
        if (std::filesystem::is_directory(flags->file, ignored))  // like --config DIR: a usage error, not a bad backup
            throw Error(ExitCode::usage, fmt::format("{} is a directory, not a backup file", flags->file),
                        "name the backup file inside it");
        ops::Installation inst = open_installation(global);
        flags->passphrase.allow_weak = true;  // the backup decides; a wrong one fails to decrypt
        flags->passphrase.stdin_taken = flags->file == "-";
        flags->options.on_step = [](const std::string& line) { out::result("{}", line); };
        ops::Report report = ops::restore(inst, flags->file, unlock_from(flags->identities, flags->passphrase), flags->options);
        json_fields()["dry_run"] = flags->options.dry_run;
        json_fields()["nothing_to_do"] = report.nothing_to_do;
        json_fields()["case"] = report.fit;
        if (!report.nothing_to_do) out::result("{}", flags->options.dry_run ? "restore: dry run, nothing written" : "restore: done");
        return 0;
    }};
}

}  // namespace ik::cli
