// `infra-keys status`: where the keys are, what is retained, whether a rotation was interrupted,
// which Infra release the database is, and where its sealed values are (per key id).
#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "cli/outcome.h"
#include "ops/key_slots.h"
#include "ops/verify.h"
#include "util/output.h"

namespace ik::cli {
namespace {

// One line (and one `census` entry) per table.column per key id.
void print_census(const ops::Census& census, const std::string& db_key_id) {
    auto& entries = json_fields()["census"] = nlohmann::json::array();
    for (const auto& c : census.columns)
        for (const auto& [key_id, values] : c.by_key_id) {
            out::result("{:<9} {:<40} key id {}{} {:>9} values{}", "census", c.column.name(), key_id,
                        key_id == db_key_id ? " (db key)" : "         ", values,
                        c.listed ? "" : "  (a column the release does not seal)");
            entries.push_back({{"table", c.column.table}, {"column", c.column.column}, {"key_id", key_id},
                               {"db_key", key_id == db_key_id}, {"values", values}, {"sealed_by_release", c.listed}});
        }
    if (entries.empty()) out::result("{:<9} no sealed values", "census");
}

}  // namespace

Command add_status(CLI::App& app, const GlobalOptions& global) {
    auto* sub = app.add_subcommand("status", "Show the provider, root key, db key row, retained keys, Infra release and "
                                             "sealed values per column and key id");
    add_json_flag(sub);
    return {sub, [&global] {
        ops::Installation inst = ops::open(global.target);
        ops::VerifyReport report = ops::verify(inst, ops::VerifyLevel::keys);
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
        json_fields()["release"] = report.release ? nlohmann::json(report.release->name()) : nlohmann::json();
        if (report.error) throw *report.error;
        auto row = ops::require_db_key_row(inst.store());
        print_census(ops::census_by_key_id(inst, report.release), seal::to_hex(seal::key_id_of(row.encrypted)));
        return static_cast<int>(report.exit_code());
    }};
}

}  // namespace ik::cli
