// `infra-keys status`: where the keys are, what is retained, whether a rotation was interrupted.
#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "ops/verify.h"
#include "util/output.h"

namespace ik::cli {

Command add_status(CLI::App& app, const GlobalOptions& global) {
    auto* sub = app.add_subcommand("status", "Show the provider, root key, db key row and retained keys (verify --level keys)");
    return {sub, [&global] {
        ops::VerifyReport report = ops::verify(global.target, ops::VerifyLevel::keys);
        for (const auto& w : report.warnings) out::warn("{}", w);
        for (const auto& c : report.checks) out::result("{:<9} {}", c.name, c.detail);
        if (report.error) throw *report.error;
        return static_cast<int>(report.exit_code());
    }};
}

}  // namespace ik::cli
