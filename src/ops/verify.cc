#include "ops/verify.h"

#include <algorithm>
#include <set>

#include <fmt/ranges.h>

#include "crypto/fingerprint.h"
#include "ops/db_key.h"
#include "ops/guard.h"
#include "ops/key_slots.h"

namespace ik::ops {
namespace {

// Provider options that hold secret references (docs/infra-format.md §2); resolving them proves the secrets exist.
const std::set<std::string> secret_options = {"accesskeyid", "secretaccesskey", "token"};

// dbPassword is a reference up to Infra v0.20 and the password itself in v0.21: past level config
// one that does not resolve is left for the database to judge (Installation::store tries it as it
// stands, on a v0.21 database only); at level config the release is not known, so it fails.
std::string resolve_secrets(Installation& inst, VerifyLevel level, VerifyReport& report) {
    int resolved = 0;
    auto resolve = [&](const std::string& option, const std::string& reference) {
        try {
            inst.secrets->resolve(reference);
        } catch (const Error& e) {  // say which option refers to the missing secret
            throw Error(e.code(), fmt::format("{}: {}", option, e.what()), e.hint());
        }
        ++resolved;
    };
    if (!inst.config.db_password.empty()) {
        try {
            resolve("dbPassword", inst.config.db_password);
        } catch (const Error& e) {
            if (!inst.config.uses_postgres() || level == VerifyLevel::config) throw;
            report.warnings.push_back(fmt::format("{}; only Infra v0.21, which reads dbPassword as the password "
                                                  "itself, can use it",
                                                  e.what()));
        }
    }
    for (const auto& [name, value] : inst.config.active_provider().options)
        if (secret_options.count(name) && !value.empty()) resolve("keys: " + inst.config.active_provider().kind + " " + name, value);
    return fmt::format("{} secret reference{} resolve", resolved, resolved == 1 ? "" : "s");
}

std::string describe_config(const config::Config& cfg) {
    return fmt::format("{} ({} provider, root key id {}){}", cfg.source.empty() ? "built-in defaults" : cfg.source,
                       cfg.db_encryption_key_provider, cfg.db_encryption_key,
                       cfg.overrides.empty() ? "" : fmt::format("; overridden by {}", fmt::join(cfg.overrides, ", ")));
}

// A native key's fingerprint lets operators compare machines and backups without the key.
std::string with_fingerprint(std::string detail, std::optional<KeySlots>& slots, const std::string& slot) {
    if (!slots) return detail;
    auto key = slots->read(slot);
    return key ? detail + ", fingerprint " + crypto::root_key_fingerprint(*key) : detail;
}

void check_root_key(Installation& inst, VerifyReport& report) {
    if (!inst.provider->root_key_exists()) throw root_key_missing(*inst.provider);
    auto slots = key_slots(inst);
    report.checks.push_back({"root key", true, with_fingerprint(inst.provider->describe(), slots, slots ? slots->key() : "")});
}

// A wrong configured key may still be a fixable state: say which retained key opens the row.
OpenDbKey open_or_explain(Installation& inst) {
    try {
        return open_db_key(inst);
    } catch (const Error& e) {
        auto slots = key_slots(inst);
        if (e.code() != ExitCode::wrong_key || !slots) throw;
        store::KeyRow row = require_db_key_row(inst.store());
        for (const auto& retained : slots->retained()) {
            try {
                slots->provider(retained)->unwrap(row.encrypted);
            } catch (const Error&) {
                continue;
            }
            throw Error(ExitCode::wrong_key,
                        fmt::format("dbkey row {} is wrapped by the retained key {}, not by the configured {}", row.id,
                                    slots->describe(retained), slots->describe(slots->key())),
                        fmt::format("run `infra-keys rewrap` to re-wrap it under {}", slots->describe(slots->key())));
        }
        throw;
    }
}

OpenDbKey check_db_key(Installation& inst, VerifyReport& report) {
    OpenDbKey key = open_or_explain(inst);
    report.checks.push_back({"db key", true,
                             fmt::format("dbkey row {} in {} unwraps (key id {})", key.row.id,
                                         inst.store().describe(), seal::to_hex(key.key_id))});
    for (const auto& line : inst.provider->status(key.row.encrypted)) report.checks.push_back({"provider", true, line});
    return key;
}

void check_release(Installation& inst, VerifyReport& report) {
    report.release = detect_release(inst.store());
    if (!report.release) {
        report.checks.push_back({"release", true, "not told by the database (no Infra migrations): checking the "
                                                  "columns some release seals"});
        return;
    }
    auto conflicts = release_conflicts(*report.release, inst);
    report.checks.push_back({"release", conflicts.empty(),
                             conflicts.empty() ? fmt::format("Infra {} (from the migrations table)", report.release->name())
                                               : conflicts.front()});
}

// Columns the release seals that the schema lacks: the database is not what its migrations say.
std::vector<ValueProblem> missing_columns(const Release& release, const Census& census) {
    std::vector<ValueProblem> missing;
    for (const auto& sealed : release.sealed) {
        bool present = std::any_of(census.columns.begin(), census.columns.end(), [&](const ColumnCensus& c) {
            return c.column.table == sealed.table && c.column.column == sealed.column;
        });
        if (!present)
            missing.push_back({sealed.table, sealed.column, "", "missing_column",
                               fmt::format("Infra {} seals this column, but the schema has no such column of a type that can hold it",
                                           release.name())});
    }
    return missing;
}

void check_values(Installation& inst, const OpenDbKey& key, CensusOptions options, VerifyReport& report) {
    CensusOptions checks = census_options(report.release);
    options.listed = checks.listed;
    options.name_unlisted = checks.name_unlisted;
    options.release = checks.release;
    report.census = take_census(inst.store(), key.plaintext, key.key_id, options);
    report.problems = report.census->problems;
    report.problem_count = report.census->problem_count;
    if (report.release) {
        auto missing = missing_columns(*report.release, *report.census);
        report.problem_count += missing.size();
        report.problems.insert(report.problems.begin(), missing.begin(), missing.end());
    }
    uint64_t values = 0, failed = 0;
    for (const auto* c : report.reported_columns()) {
        values += counted_values(*c);
        failed += counted_failures(*c);
    }
    std::string detail = fmt::format("{} of {} encrypted values decrypt", values - failed, values);
    if (report.problem_count > failed) detail += fmt::format("; {} other problems", report.problem_count - failed);
    report.checks.push_back({"values", report.problem_count == 0, detail});
}

}  // namespace

std::optional<VerifyLevel> parse_verify_level(const std::string& text) {
    if (text == "config") return VerifyLevel::config;
    if (text == "keys") return VerifyLevel::keys;
    if (text == "full") return VerifyLevel::full;
    return std::nullopt;
}

std::string to_string(VerifyLevel level) {
    switch (level) {
    case VerifyLevel::config: return "config";
    case VerifyLevel::keys: return "keys";
    case VerifyLevel::full: return "full";
    }
    return "?";
}

Census census_by_key_id(Installation& inst, const std::optional<Release>& release) {
    store::KeyRow row = require_db_key_row(inst.store());
    CensusOptions options = census_options(release);
    options.open_values = false;
    return take_census(inst.store(), {}, seal::key_id_of(row.encrypted), options);
}

uint64_t counted_values(const ColumnCensus& c) { return c.sealed + c.failed + (c.listed ? c.plaintext : 0); }
uint64_t counted_failures(const ColumnCensus& c) { return c.failed + (c.listed ? c.plaintext : 0); }

std::vector<const ColumnCensus*> VerifyReport::reported_columns() const {
    std::vector<const ColumnCensus*> out;
    if (census)
        for (const auto& c : census->columns)
            if (c.listed || c.sealed + c.failed > 0) out.push_back(&c);
    return out;
}

ExitCode VerifyReport::exit_code() const {
    if (error) return error->code();
    for (const auto& check : checks)
        if (!check.ok) return ExitCode::problems;
    return ExitCode::ok;
}

namespace {

void run_checks(Installation& inst, VerifyLevel level, const CensusOptions& scan_options, VerifyReport& report) {
    report.warnings = inst.config.warnings;
    report.checks.push_back({"config", true, describe_config(inst.config)});
    report.checks.push_back({"secrets", true, resolve_secrets(inst, level, report)});
    if (level == VerifyLevel::config) return;

    refuse_if_rotation_interrupted(inst);
    check_root_key(inst, report);
    if (auto slots = key_slots(inst))
        for (const auto& retained : slots->retained())
            report.checks.push_back({"retained", true, with_fingerprint(slots->describe(retained), slots, retained)});
    OpenDbKey key = check_db_key(inst, report);
    check_release(inst, report);
    if (level == VerifyLevel::keys) return;

    check_values(inst, key, scan_options, report);
}

// The check an error stopped, marked failed in the report (so --json lists it): an error of the
// root key itself (missing, malformed, unreachable) fails "root key" even after it was found.
void mark_failed_check(VerifyReport& report, const Error& e) {
    auto done = [&](const char* name) {
        return std::any_of(report.checks.begin(), report.checks.end(), [&](const Check& c) { return c.name == name; });
    };
    std::string name = e.code() == ExitCode::provider    ? "root key"
                       : e.code() == ExitCode::usage     ? (done("config") ? "secrets" : "config")
                       : e.code() == ExitCode::interrupted ? "rotation"
                       : done("db key")                  ? "values"
                                                         : "db key";
    for (auto& check : report.checks)
        if (check.name == name) {
            check.ok = false;
            check.detail = e.what();
            return;
        }
    report.checks.push_back({name, false, e.what()});
}

}  // namespace

VerifyReport verify(Installation& inst, VerifyLevel level, const CensusOptions& scan_options) {
    VerifyReport report;
    report.level = level;
    try {
        run_checks(inst, level, scan_options, report);
    } catch (const Error& e) {
        report.error = e;
        mark_failed_check(report, e);
    }
    return report;
}

VerifyReport verify(const Target& target, VerifyLevel level, const CensusOptions& scan_options) {
    try {
        Installation inst = open(target);
        return verify(inst, level, scan_options);
    } catch (const Error& e) {
        VerifyReport report;
        report.level = level;
        report.error = e;
        mark_failed_check(report, e);
        return report;
    }
}

}  // namespace ik::ops
