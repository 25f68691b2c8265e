// `infra-keys init`: parse → plan → act → report.
#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "cli/outcome.h"
#include "ops/guard.h"
#include "ops/init.h"
#include "util/output.h"

namespace ik::cli {

Command add_init(CLI::App& app, const GlobalOptions& global) {
    auto* sub = app.add_subcommand("init", "Create the root key and the db key if missing, as the Infra server would");
    auto dry_run = std::make_shared<bool>(false);
    sub->add_flag("-n,--dry-run", *dry_run, "print the plan and write nothing");
    add_json_flag(sub);

    return {sub, [&global, dry_run] {
        ops::Installation inst = open_installation(global);
        ops::ChangeLock lock = ops::lock_and_check(inst, {/*server_stopped=*/true, false, 64, /*creating=*/true});
        ops::InitPlan plan = ops::plan_init(inst);
        json_fields()["dry_run"] = *dry_run;
        json_fields()["nothing_to_do"] = plan.nothing_to_do();
        if (plan.nothing_to_do()) {
            out::result("init: nothing to do: the root key and the db key exist, and the root key unwraps the db key");
            return 0;
        }
        for (const auto& step : plan.steps) out::result("{}{}", *dry_run ? "would " : "", step);
        if (*dry_run) {
            out::result("init: dry run, nothing written");
            return 0;
        }
        ops::apply_init(inst, plan);
        out::result("init: done");
        return 0;
    }};
}

}  // namespace ik::cli
