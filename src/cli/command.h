// What every subcommand shares: the global options, and one registration function per command.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include <vector>

#include "crypto/backup_age.h"
#include "ops/installation.h"
#include "util/error.h"

namespace CLI { class App; }
namespace ik::passphrase { struct Source; }

namespace ik::cli {

struct GlobalOptions {
    ops::Target target;  // --config, --db-url, --kubeconfig
    bool quiet = false;
    bool verbose = false;
};

// A subcommand: CLI11 fills its flags while parsing; `run` is called afterwards and returns the
// exit code (errors are thrown as ik::Error and turned into exit codes by main).
struct Command {
    CLI::App* app = nullptr;
    std::function<int()> run;
};

// Opens the installation the global options name and prints its config warnings: the one way
// every command that works on an installation starts.
ops::Installation open_installation(const GlobalOptions& global);

// --passphrase-file, --passphrase-fd and --passphrase-command, shared by backup and restore.
void add_passphrase_options(CLI::App* sub, passphrase::Source& source);
// --identity FILE (repeatable), for opening age backups with a private key.
void add_identity_option(CLI::App* sub, std::vector<std::string>& identity_files);
// The identities in those files; with none, the passphrase from `source`.
backup::Unlock unlock_from(const std::vector<std::string>& identity_files, passphrase::Source& source);

// Each lives in its own file under src/cli/ and adds one subcommand with its flags.
Command add_init(CLI::App& app, const GlobalOptions& global);
Command add_verify(CLI::App& app, const GlobalOptions& global);
Command add_backup(CLI::App& app, const GlobalOptions& global);
Command add_restore(CLI::App& app, const GlobalOptions& global);
Command add_rotate_root(CLI::App& app, const GlobalOptions& global);
Command add_rotate_data_key(CLI::App& app, const GlobalOptions& global);
Command add_rewrap(CLI::App& app, const GlobalOptions& global);
Command add_status(CLI::App& app, const GlobalOptions& global);
Command add_help(CLI::App& app);

// The error for a first word that is no command ("verfy": did you mean verify?), or nullopt.
std::optional<Error> unknown_command(const CLI::App& app, int argc, char** argv);

}  // namespace ik::cli
