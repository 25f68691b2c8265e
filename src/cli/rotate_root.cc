// `infra-keys rotate-root`: a new root key for the same db key; `--resume`, `--retire-old`.
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "cli/backup_options.h"
#include "cli/command.h"
#include "cli/outcome.h"
#include "ops/rotation.h"
#include "util/output.h"

namespace ik::cli {

Command add_rotate_root(CLI::App& app, const GlobalOptions& global) {
    auto* sub = app.add_subcommand("rotate-root", "Replace the root key, re-wrapping the db key; the old key is retained");
    struct Flags {
        bool dry_run = false, resume = false, abort = false, retire_old = false, server_stopped = false;
        std::optional<std::string> to_key_id;
        BackupFlags backup;
    };
    auto flags = std::make_shared<Flags>();
    sub->add_flag("-n,--dry-run", flags->dry_run, "print the plan and touch nothing");
    auto* resume = sub->add_flag("--resume", flags->resume, "complete a rotation that was interrupted");
    auto* abort = sub->add_flag("--abort", flags->abort, "drop a rotation that was interrupted before its commit")
                      ->excludes(resume);
    auto* retire_old = sub->add_flag("--retire-old", flags->retire_old,
                  "delete retained previous root keys once verify --level full passes (rotates nothing)")
        ->excludes(resume)
        ->excludes(abort);
    sub->add_flag("--server-stopped", flags->server_stopped,
                  "assert the Infra server is stopped (skips detecting it)");
    sub->add_option("--to-key-id", flags->to_key_id,
                    "awskms: re-encrypt under this KMS key (id, ARN or alias/NAME) instead of the configured one")
        ->excludes(resume)->excludes(retire_old);
    add_backup_options(sub, flags->backup)->excludes(resume)->excludes(abort)->excludes(retire_old);
    add_json_flag(sub);

    return {sub, [&global, flags] {
        ops::Installation inst = open_installation(global);
        bool would = flags->dry_run && !flags->retire_old;
        auto print = [would](const std::string& line) { out::result("{}{}", would ? "would " : "", line); };
        std::optional<ops::BackupTarget> backup = backup_target_from(flags->backup, flags->dry_run);
        ops::RotateResult result =
            flags->retire_old
                ? ops::retire_old_keys(inst, flags->dry_run, print)
                : ops::rotate_root(inst, {flags->dry_run, flags->resume, flags->abort, flags->server_stopped,
                                          flags->to_key_id, print, backup ? &*backup : nullptr});
        json_fields()["dry_run"] = flags->dry_run;
        json_fields()["nothing_to_do"] = result.nothing_to_do;
        json_fields()["values"] = result.values;
        json_fields()["kept_old_key"] = result.kept_old_key;
        if (result.nothing_to_do || flags->retire_old) return 0;
        if (flags->abort) {
            out::result("rotate-root: {}", flags->dry_run ? "dry run, nothing written" : "aborted; the installation is as it was before the rotation");
            return 0;
        }
        if (flags->dry_run) {
            out::result("rotate-root: dry run, nothing written");
            return 0;
        }
        out::result("rotate-root: done. The db key itself did not change, so encrypted values keep their plaintext; "
                    "start the Infra server again.{}",
                    result.kept_old_key ? " Retire the previous key with `infra-keys rotate-root --retire-old` once it runs."
                                        : "");
        if (!backup)
            out::result("rotate-root: existing key backups still restore this database (`infra-keys restore` re-wraps "
                        "the db key they hold); take a fresh one now, which matches it exactly: `infra-keys backup` "
                        "(next time: `rotate-root --backup FILE`).");
        return 0;
    }};
}

}  // namespace ik::cli
