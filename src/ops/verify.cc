#include "ops/verify.h"

#include <set>

#include "crypto/fingerprint.h"
#include "ops/db_key.h"
#include "ops/guard.h"
#include "ops/key_slots.h"

namespace ik::ops {
namespace {

// Provider options that hold secret references (spec §3); resolving them proves the secrets exist.
const std::set<std::string> secret_options = {"accesskeyid", "secretaccesskey", "token"};

std::string resolve_secrets(Installation& inst) {
    int resolved = 0;
    if (!inst.config.db_password.empty()) {
        inst.secrets->resolve(inst.config.db_password);
        ++resolved;
    }
    for (const auto& [name, value] : inst.config.active_provider().options) {
        if (secret_options.count(name) == 0 || value.empty()) continue;
        inst.secrets->resolve(value);
        ++resolved;
    }
    return fmt::format("{} secret reference{} resolve", resolved, resolved == 1 ? "" : "s");
}

std::string describe_config(const config::Config& cfg) {
    return fmt::format("{} ({} provider, root key id {})", cfg.source.empty() ? "built-in defaults" : cfg.source,
                       cfg.db_encryption_key_provider, cfg.db_encryption_key);
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

void check_values(Installation& inst, const OpenDbKey& key, const ScanOptions& options, VerifyReport& report) {
    report.scan = scan_encrypted_values(inst.store(), key, options);
    uint64_t failed = report.scan->failed();
    report.checks.push_back({"values", failed == 0,
                             fmt::format("{} of {} encrypted values decrypt", report.scan->values() - failed,
                                         report.scan->values())});
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

ExitCode VerifyReport::exit_code() const {
    if (error) return error->code();
    for (const auto& check : checks)
        if (!check.ok) return ExitCode::problems;
    return ExitCode::ok;
}

namespace {

void run_checks(Installation& inst, VerifyLevel level, const ScanOptions& scan_options, VerifyReport& report) {
    report.warnings = inst.config.warnings;
    report.checks.push_back({"config", true, describe_config(inst.config)});
    report.checks.push_back({"secrets", true, resolve_secrets(inst)});
    if (level == VerifyLevel::config) return;

    refuse_if_rotation_interrupted(inst);
    check_root_key(inst, report);
    if (auto slots = key_slots(inst))
        for (const auto& retained : slots->retained())
            report.checks.push_back({"retained", true, with_fingerprint(slots->describe(retained), slots, retained)});
    OpenDbKey key = check_db_key(inst, report);
    if (level == VerifyLevel::keys) return;

    check_values(inst, key, scan_options, report);
}

}  // namespace

VerifyReport verify(Installation& inst, VerifyLevel level, const ScanOptions& scan_options) {
    VerifyReport report;
    report.level = level;
    try {
        run_checks(inst, level, scan_options, report);
    } catch (const Error& e) {
        report.error = e;
    }
    return report;
}

VerifyReport verify(const Target& target, VerifyLevel level, const ScanOptions& scan_options) {
    try {
        Installation inst = open(target);
        return verify(inst, level, scan_options);
    } catch (const Error& e) {
        VerifyReport report;
        report.level = level;
        report.error = e;
        return report;
    }
}

}  // namespace ik::ops
