// infra-keys: administers the envelope-encryption keys of an Infra server's database.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/command.h"
#include "cli/outcome.h"
#include "util/error.h"
#include "util/output.h"

namespace {

int report(const ik::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "infra-keys: %s\n", e.what());
    if (!e.hint().empty()) std::fprintf(stderr, "infra-keys: hint: %s\n", e.hint().c_str());
    return static_cast<int>(e.code());
}

// Botan locks a pool of memory for secure_vector on first use, one guarded page at a time; its
// default 512 KiB pool costs ~128 mmap/mprotect/mlock rounds, most of a short command's system
// time. We hold a handful of 32-byte keys, so 64 KiB is plenty; larger allocations still come
// zeroed from the heap and are scrubbed on free. An operator's own setting wins.
void size_locked_memory_pool() {
    ::setenv("BOTAN_MLOCK_POOL_SIZE", "64", /*overwrite=*/0);
}

// Runs the command; with --json its outcome (success or error) is one JSON document on stdout.
// verify prints its own documented report, so only its errors go through here as text.
int run(ik::cli::Command& command) {
    std::string name = command.app->get_name();
    bool json = command.app->count("--json") > 0 && name != "verify";
    ik::out::set_collect(json);
    auto failed = [&](const ik::Error& e) {
        if (json) ik::cli::print_json_outcome(name, static_cast<int>(e.code()), &e);
        return report(e);
    };
    try {
        int code = command.run();
        if (json) ik::cli::print_json_outcome(name, code, nullptr);
        return code;
    } catch (const ik::Error& e) {
        return failed(e);
    } catch (const std::exception& e) {
        return failed(ik::Error(ik::ExitCode::internal, fmt::format("internal error: {}", e.what())));
    }
}

}  // namespace

int main(int argc, char** argv) {
    size_locked_memory_pool();
    // Step lines reach a log as they happen, so a job killed mid-way shows which steps finished.
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    CLI::App app{"Back up, restore, rotate and verify the encryption keys of an Infra server's database.",
                 "infra-keys"};
    app.set_version_flag("--version", "infra-keys " INFRA_KEYS_VERSION);
    app.require_subcommand(1);
    app.fallthrough();  // global flags may also follow the subcommand

    ik::cli::GlobalOptions global;
    app.add_option("-c,--config", global.target.config_path,
                   "Infra server config or Helm values file (else $INFRA_KEYS_CONFIG, $INFRA_SERVER_CONFIG_FILE)");
    app.add_option("--db-url", global.target.db_url,
                   "PostgreSQL connection string or URI, overriding the config's db fields");
    app.add_option("--kubeconfig", global.target.kubeconfig, "kubeconfig for Kubernetes secrets (else $KUBECONFIG)");
    app.add_flag("-q,--quiet", global.quiet, "print only errors and warnings");
    app.add_flag("-v,--verbose", global.verbose, "print more detail");

    std::vector<ik::cli::Command> commands = {
        ik::cli::add_init(app, global),
        ik::cli::add_verify(app, global),
        ik::cli::add_rotate_root(app, global),
        ik::cli::add_rewrap(app, global),
        ik::cli::add_status(app, global),
        ik::cli::add_backup(app, global),
        ik::cli::add_restore(app, global),
    };

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        int code = app.exit(e);
        return code == 0 ? 0 : static_cast<int>(ik::ExitCode::usage);
    }

    ik::out::set_level(global.quiet     ? ik::out::Level::quiet
                       : global.verbose ? ik::out::Level::verbose
                                        : ik::out::Level::normal);
    for (auto& command : commands)
        if (command.app->parsed()) return run(command);
    return static_cast<int>(ik::ExitCode::usage);
}
