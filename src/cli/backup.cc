// `infra-keys backup`: an encrypted, authenticated backup of the keys, proven before it is kept.
#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "cli/outcome.h"
#include "ops/backup.h"
#include "util/error.h"
#include "util/output.h"
#include "util/passphrase.h"

namespace ik::cli {

namespace {

void add_kdf_options(CLI::App* sub, std::optional<size_t>& memory_mib, std::optional<size_t>& iterations) {
    sub->add_option("--kdf-memory", memory_mib, "Argon2id memory in MiB (default 96; raise to make guessing dearer)")
        ->check(CLI::Range(size_t{1}, size_t{4096}));
    sub->add_option("--kdf-iterations", iterations, "Argon2id passes (default in the README)")
        ->check(CLI::Range(size_t{1}, size_t{100}));
}

}  // namespace

void add_passphrase_options(CLI::App* sub, passphrase::Source& source) {
    sub->add_option("--passphrase-file", source.file, "read the passphrase from FILE (one line)");
    sub->add_option("--passphrase-fd", source.fd, "read the passphrase from file descriptor N");
}

Command add_backup(CLI::App& app, const GlobalOptions& global) {
    auto* sub = app.add_subcommand("backup", "Write a passphrase-encrypted backup of the root key and the key rows");
    struct Flags {
        std::string output = "infra-keys.backup";
        bool force = false;
        std::optional<std::string> check;
        std::optional<size_t> kdf_memory_mib, kdf_iterations;
        passphrase::Source passphrase;
    };
    auto flags = std::make_shared<Flags>();
    sub->add_option("-o,--output", flags->output, "where to write it, or - for stdout")->capture_default_str();
    sub->add_flag("-f,--force", flags->force, "overwrite an existing file");
    sub->add_option("--check", flags->check, "do not write: prove that backup FILE opens the live db key");
    sub->add_flag("--allow-weak-passphrase", flags->passphrase.allow_weak, "accept a passphrase under 12 characters");
    add_passphrase_options(sub, flags->passphrase);
    add_kdf_options(sub, flags->kdf_memory_mib, flags->kdf_iterations);
    add_json_flag(sub);

    return {sub, [&global, flags, sub] {
        if (flags->output == "-" && sub->count("--json") && !flags->check)
            fail(ExitCode::usage, "backup: --json cannot share stdout with --output -");
        ops::Installation inst = open_installation(global);
        if (flags->check) {
            flags->passphrase.allow_weak = true;  // judging an existing backup, not choosing a passphrase
            ops::Report report = ops::check_backup(inst, *flags->check, passphrase::read(flags->passphrase));
            for (const auto& line : report.lines) out::result("{}", line);
            json_fields()["problems"] = report.problems;
            return report.problems ? static_cast<int>(ExitCode::problems) : 0;
        }
        flags->passphrase.confirm = true;
        ops::BackupOptions options{flags->output, flags->force, std::nullopt};
        if (flags->kdf_memory_mib || flags->kdf_iterations) {
            backup::KdfParams kdf = backup::default_kdf();
            if (flags->kdf_memory_mib) kdf.memory_kib = *flags->kdf_memory_mib * 1024;
            if (flags->kdf_iterations) kdf.iterations = *flags->kdf_iterations;
            options.kdf = kdf;
        }
        ops::Report report = ops::write_backup(inst, options, passphrase::read(flags->passphrase));
        // With --output -, stdout carries the backup itself.
        for (const auto& line : report.lines)
            if (flags->output == "-") out::warning(line); else out::result("{}", line);
        return 0;
    }};
}

}  // namespace ik::cli
