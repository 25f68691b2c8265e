// `infra-keys status`: where the keys are, what is retained, whether a rotation was interrupted.
#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "cli/outcome.h"
#include "ops/key_slots.h"
#include "ops/verify.h"
#include "util/output.h"

namespace ik::cli {

Command add_status(CLI::App& app, const GlobalOptions& global) {
    auto* sub = app.add_subcommand("status", "Show the provider, root key, db key row and retained keys (verify --level keys)");
    add_json_flag(sub);
    return {sub, [&global] {
        ops::VerifyReport report = ops::verify(global.target, ops::VerifyLevel::keys);
        for (const auto& w : report.warnings) out::warn("{}", w);
        json_fields()["checks"] = nlohmann::json::array();
        for (const auto& c : report.checks) {
            out::result("{:<9} {}", c.name, c.detail);
            json_fields()["checks"].push_back({{"name", c.name}, {"ok", c.ok}, {"detail", c.detail}});
        }
        // Key copies a killed write left behind: no command needs them, and `status` says where.
        json_fields()["stale_temp_files"] = nlohmann::json::array();
        for (const auto& stale : ops::stale_temp_files(global.target)) {
            out::result("{:<9} {} (a stale temp copy of a key; the next key change removes it)", "stale", stale);
            json_fields()["stale_temp_files"].push_back(stale);
        }
        if (report.error) throw *report.error;
        return static_cast<int>(report.exit_code());
    }};
}

}  // namespace ik::cli
