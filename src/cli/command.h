// What every subcommand shares: the global options, and one registration function per command.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "ops/installation.h"

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

// --passphrase-file and --passphrase-fd, shared by backup and restore (never a passphrase argument).
void add_passphrase_options(CLI::App* sub, passphrase::Source& source);

// Each lives in its own file under src/cli/ and adds one subcommand with its flags.
Command add_init(CLI::App& app, const GlobalOptions& global);
Command add_verify(CLI::App& app, const GlobalOptions& global);
Command add_backup(CLI::App& app, const GlobalOptions& global);
Command add_restore(CLI::App& app, const GlobalOptions& global);
Command add_rotate_root(CLI::App& app, const GlobalOptions& global);
Command add_rewrap(CLI::App& app, const GlobalOptions& global);
Command add_status(CLI::App& app, const GlobalOptions& global);

}  // namespace ik::cli
