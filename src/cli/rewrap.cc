// `infra-keys rewrap`: re-wrap the db key under the configured root key and provider.
#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "cli/outcome.h"
#include "ops/rewrap.h"
#include "util/output.h"

namespace ik::cli {

Command add_rewrap(CLI::App& app, const GlobalOptions& global) {
    auto* sub = app.add_subcommand(
        "rewrap", "Re-wrap the db key under the configured root key, opening it with a retained or named old key");
    auto options = std::make_shared<ops::RewrapOptions>();
    sub->add_option("--from-key", options->from_key, "a native root key file that opens the current dbkey row");
    sub->add_option("--from-config", options->from_config, "the previous Infra config, whose provider opens the row");
    sub->add_flag("-n,--dry-run", options->dry_run, "print the plan and touch nothing");
    sub->add_flag("--server-stopped", options->server_stopped, "assert the Infra server is stopped (skips detecting it)");
    add_json_flag(sub);

    return {sub, [&global, options] {
        ops::Installation inst = open_installation(global);
        options->on_step = [](const std::string& line) { out::result("{}", line); };
        ops::RewrapResult result = ops::rewrap(inst, *options);
        json_fields()["dry_run"] = options->dry_run;
        json_fields()["nothing_to_do"] = result.nothing_to_do;
        json_fields()["values"] = result.values;
        if (!result.nothing_to_do)
            out::result("{}", options->dry_run ? "rewrap: dry run, nothing written" : "rewrap: done");
        return 0;
    }};
}

}  // namespace ik::cli
