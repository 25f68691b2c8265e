// `infra-keys verify`: proves the keys and values decrypt; human or JSON report.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/outcome.h"
#include "util/docdir.h"
#include "util/progress.h"
#include "ops/verify.h"
#include "util/output.h"

namespace ik::cli {
namespace {

nlohmann::json to_json(const ops::VerifyReport& report) {
    nlohmann::json j;
    j["level"] = ops::to_string(report.level);
    j["ok"] = report.exit_code() == ExitCode::ok;
    j["exit_code"] = static_cast<int>(report.exit_code());
    j["checks"] = nlohmann::json::array();
    for (const auto& c : report.checks) j["checks"].push_back({{"name", c.name}, {"ok", c.ok}, {"detail", c.detail}});
    j["warnings"] = report.warnings;
    if (report.release) j["release"] = report.release->name();
    if (report.census) {
        uint64_t values = 0, failed = 0;
        j["columns"] = nlohmann::json::array();
        for (const auto* c : report.reported_columns()) {
            values += ops::counted_values(*c);
            failed += ops::counted_failures(*c);
            nlohmann::json key_ids = nlohmann::json::object();
            for (const auto& [id, n] : c->by_key_id) key_ids[id] = n;
            j["columns"].push_back({{"table", c->column.table}, {"column", c->column.column},
                                    {"values", ops::counted_values(*c)}, {"ok", c->sealed},
                                    {"failed", ops::counted_failures(*c)}, {"sealed_by_release", c->listed},
                                    {"key_ids", key_ids}});
        }
        j["values"] = values;
        j["failed"] = failed;
        j["problems"] = report.problem_count;
        j["failures"] = nlohmann::json::array();
        for (const auto& f : report.problems)
            j["failures"].push_back({{"table", f.table}, {"column", f.column}, {"row", f.row}, {"reason", f.reason},
                                     {"detail", f.detail}});
    }
    if (report.error)
        j["error"] = {{"message", report.error->what()}, {"hint", report.error->hint()},
                      {"exit_code", static_cast<int>(report.error->code())}};
    return j;
}

void print_human(const ops::VerifyReport& report) {
    for (const auto& c : report.checks) out::result("{:<9} {:<4} {}", c.name, c.ok ? "ok" : "FAIL", c.detail);
    for (const auto* c : report.reported_columns())
        out::result("  {:<36} {:>9} values {:>9} ok {:>6} failed{}", c->column.name(), ops::counted_values(*c), c->sealed,
                    ops::counted_failures(*c), c->listed || !report.release ? "" : "  (not sealed by this release)");
    for (const auto& f : report.problems) {
        std::string where = f.row.empty() ? "" : " row " + f.row;
        out::result("  FAIL {}.{}{}: {}: {}", f.table, f.column, where, f.reason, f.detail);
    }
    if (report.problem_count > report.problems.size())
        out::result("  … and {} more problems not named here", report.problem_count - report.problems.size());
    if (report.exit_code() == ExitCode::ok) out::result("verify: ok (level {})", ops::to_string(report.level));
    else if (!report.error) out::result("verify: FAILED (level {})", ops::to_string(report.level));
}

}  // namespace

Command add_verify(CLI::App& app, const GlobalOptions& global) {
    auto* sub = app.add_subcommand("verify", "Prove the config, the keys and (with --level full) every encrypted value");
    struct Flags {
        std::string level = "keys";
        bool json = false;
        unsigned jobs = 0;
    };
    auto flags = std::make_shared<Flags>();
    sub->add_option("-l,--level", flags->level, "config | keys | full")
        ->check(CLI::IsMember({"config", "keys", "full"}))
        ->capture_default_str();
    sub->add_flag("--json", flags->json, "print a JSON report on stdout (schema: \"verify --json\" in " INFRA_KEYS_DOCDIR "/README.md)");
    sub->add_option("-j,--jobs", flags->jobs, "threads decrypting values at --level full (default: one per core)")
        ->check(CLI::Range(1u, 256u));

    return {sub, [&global, flags] {
        ops::CensusOptions scan_options;
        scan_options.threads = flags->jobs;
        Progress progress("verify", !flags->json && !global.quiet);
        if (progress.enabled()) scan_options.progress = [&progress](uint64_t done, uint64_t total) { progress.update(done, total); };
        ops::VerifyReport report = ops::verify(global.target, *ops::parse_verify_level(flags->level), scan_options);
        progress.finish();

        for (const auto& w : report.warnings) out::warn("{}", w);
        if (flags->json) print_json(to_json(report));
        else print_human(report);
        if (report.error) throw *report.error;  // main prints it on stderr and exits with its code
        return static_cast<int>(report.exit_code());
    }};
}

}  // namespace ik::cli
