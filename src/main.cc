// infra-keys: administers the envelope-encryption keys of an Infra server's database.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <new>
#include <vector>

#include <sys/prctl.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/command.h"
#include "cli/outcome.h"
#include "util/docdir.h"
#include "util/error.h"
#include "util/output.h"
#include "util/progress.h"

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

// Key material must never reach a core dump: no core file for the life of the process, and not
// dumpable (which also keeps other users' ptrace and /proc/PID/mem out). Failing to set either
// is not fatal — the keys are still scrubbed after use — but is said.
void forbid_core_dumps() {
    const rlimit none{0, 0};
    if (::setrlimit(RLIMIT_CORE, &none) != 0) std::perror("infra-keys: warning: cannot disable core dumps");
    if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) std::perror("infra-keys: warning: cannot make the process undumpable");
}

// Runs the command; with --json its outcome (success or error) is one JSON document on stdout.
// verify prints its own documented report, so only its errors go through here as text.
int run(ik::cli::Command& command) {
    std::string name = command.app->get_name();
    const CLI::Option* json_flag = command.app->get_option_no_throw("--json");  // `help` has none
    bool json = json_flag && json_flag->count() > 0 && name != "verify";
    ik::out::set_collect(json);
    auto failed = [&](const ik::Error& e) {
        if (json) ik::cli::print_json_outcome(name, static_cast<int>(e.code()), &e);
        return report(e);
    };
    try {
        auto started = std::chrono::steady_clock::now();
        int code = command.run();
        ik::out::detail("{}: finished in {:.2f} s", name,
                        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
        if (json) ik::cli::print_json_outcome(name, code, nullptr);
        return code;
    } catch (const ik::Error& e) {
        return failed(e);
    } catch (const std::bad_alloc&) {
        // In practice a backup's key derivation (scrypt, up to its work factor) on a small host or
        // under a memory limit: the host's limit, not a bug. Nothing was written (backups are written after it).
        return failed(ik::Error(ik::ExitCode::usage, "not enough memory for this command (the backup's key derivation needs its memory at once)",
                                "run it where more memory is available (or under a higher memory limit); a new "
                                "backup can use a smaller --scrypt-work-factor"));
    } catch (const std::exception& e) {
        return failed(ik::Error(ik::ExitCode::internal, fmt::format("internal error: {}", e.what())));
    }
}

}  // namespace

int main(int argc, char** argv) {
    forbid_core_dumps();
    size_locked_memory_pool();
    // Step lines reach a log as they happen, so a job killed mid-way shows which steps finished.
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    CLI::App app{"Back up, restore, rotate and verify the encryption keys of an Infra server's database.",
                 "infra-keys"};
    app.set_version_flag("--version", "infra-keys " INFRA_KEYS_VERSION);
    app.require_subcommand(1);
    app.footer("Manual: man infra-keys. Documentation: " INFRA_KEYS_DOCDIR "/README.md");
    app.fallthrough();  // global flags may also follow the subcommand

    ik::cli::GlobalOptions global;
    auto* config = app.add_option("-c,--config", global.target.config_path,
                                  "Infra server config or Helm values file (else $INFRA_KEYS_CONFIG, $INFRA_SERVER_CONFIG_FILE)");
    app.add_option("--kube-deployment", global.target.kube_deployment,
                   "NAMESPACE/NAME: the Infra server Deployment whose mounted config, env and Secrets to use")
        ->excludes(config);
    app.add_option("--db-url", global.target.db_url,
                   "PostgreSQL connection string or URI, overriding the config's db fields");
    app.add_option("--kubeconfig", global.target.kubeconfig, "kubeconfig for Kubernetes secrets (else $KUBECONFIG)");
    // No -n: in four subcommands -n already means --dry-run.
    app.add_option("--context", global.target.kube_context, "kubeconfig context to use instead of current-context");
    app.add_option("--namespace", global.target.kube_namespace,
                   "Kubernetes namespace instead of the context's or service account's");
    app.add_flag("-q,--quiet", global.quiet, "print only errors and warnings");
    app.add_flag("-v,--verbose", global.verbose, "print more detail");
    app.add_flag_callback("--no-progress", [] { ik::Progress::turn_off(); }, "never draw a progress bar");

    std::vector<ik::cli::Command> commands = {
        ik::cli::add_init(app, global),
        ik::cli::add_verify(app, global),
        ik::cli::add_rotate_root(app, global),
        ik::cli::add_rotate_data_key(app, global),
        ik::cli::add_rewrap(app, global),
        ik::cli::add_status(app, global),
        ik::cli::add_backup(app, global),
        ik::cli::add_restore(app, global),
        ik::cli::add_help(app),
    };

    // One line naming the problem, then a hint, as for every other error.
    app.failure_message([](const CLI::App* failed, const CLI::Error& e) {
        std::string command = failed->get_parent() ? "infra-keys " + failed->get_name() : "infra-keys";
        return fmt::format("infra-keys: {}\ninfra-keys: hint: `{} --help` lists the options\n", e.what(), command);
    });
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        if (auto unknown = ik::cli::unknown_command(app, argc, argv)) return report(*unknown);
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
