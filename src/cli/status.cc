// `infra-keys status`: where the keys are, what is retained, whether a rotation was interrupted,
// which Infra release the database is, and where its sealed values are (per key id).
#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "ops/verify.h"
#include "util/output.h"

namespace ik::cli {
namespace {

void print_census(const ops::Census& census, const std::string& db_key_id) {
    bool any = false;
    for (const auto& c : census.columns)
        for (const auto& [key_id, values] : c.by_key_id) {
            any = true;
            out::result("{:<9} {:<40} key id {}{} {:>9} values{}", "census", c.column.name(), key_id,
                        key_id == db_key_id ? " (db key)" : "         ", values,
                        c.listed ? "" : "  (a column the release does not seal)");
        }
    if (!any) out::result("{:<9} no sealed values", "census");
}

}  // namespace

Command add_status(CLI::App& app, const GlobalOptions& global) {
    auto* sub = app.add_subcommand("status", "Show the provider, root key, db key row, retained keys, Infra release and "
                                             "sealed values per column and key id");
    return {sub, [&global] {
        ops::Installation inst = ops::open(global.target);
        ops::VerifyReport report = ops::verify(inst, ops::VerifyLevel::keys);
        for (const auto& w : report.warnings) out::warn("{}", w);
        for (const auto& c : report.checks) out::result("{:<9} {}", c.name, c.detail);
        if (report.error) throw *report.error;
        auto row = ops::require_db_key_row(inst.store());
        print_census(ops::census_by_key_id(inst, report.release), seal::to_hex(seal::key_id_of(row.encrypted)));
        return static_cast<int>(report.exit_code());
    }};
}

}  // namespace ik::cli
