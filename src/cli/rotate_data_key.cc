// `infra-keys rotate-data-key`: a new db key, every value it sealed re-sealed, in one transaction.
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "cli/backup_options.h"
#include "cli/command.h"
#include "cli/outcome.h"
#include "ops/rotate_data_key.h"
#include "util/error.h"
#include "util/output.h"

namespace ik::cli {

Command add_rotate_data_key(CLI::App& app, const GlobalOptions& global) {
    auto* sub = app.add_subcommand(
        "rotate-data-key", "Replace the db key itself, re-sealing every encrypted value with the new one in one transaction");
    struct Flags {
        bool dry_run = false, server_stopped = false;
        BackupFlags backup;
    };
    auto flags = std::make_shared<Flags>();
    sub->add_flag("-n,--dry-run", flags->dry_run, "print the plan and touch nothing");
    sub->add_flag("--server-stopped", flags->server_stopped, "assert the Infra server is stopped (skips detecting it)");
    add_backup_options(sub, flags->backup);
    add_json_flag(sub);

    return {sub, [&global, flags] {
        ops::Installation inst = open_installation(global);
        std::optional<ops::BackupTarget> backup = backup_target_from(flags->backup, flags->dry_run);
        ops::DataKeyResult result = ops::rotate_data_key(
            inst, {flags->dry_run, flags->server_stopped, backup ? &*backup : nullptr,
                   [](const std::string& line) { out::result("{}", line); }});
        json_fields()["dry_run"] = flags->dry_run;
        json_fields()["nothing_to_do"] = false;
        json_fields()["values"] = result.values;
        json_fields()["backup"] = flags->backup.path ? nlohmann::json(*flags->backup.path) : nlohmann::json(nullptr);
        if (flags->dry_run) {
            out::result("rotate-data-key: dry run, nothing written");
            return 0;
        }
        out::result("rotate-data-key: done. Every encrypted value is now sealed by the new db key; start the Infra "
                    "server again.{}",
                    flags->backup.path ? "" : " Older backups hold the previous db key: take a new backup with `infra-keys backup`.");
        return 0;
    }};
}

}  // namespace ik::cli
