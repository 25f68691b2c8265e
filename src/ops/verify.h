// `verify`: proves, without writing anything, that an installation's keys and values decrypt.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "ops/installation.h"
#include "ops/scan.h"
#include "util/error.h"

namespace ik::ops {

enum class VerifyLevel { config, keys, full };
std::optional<VerifyLevel> parse_verify_level(const std::string& text);
std::string to_string(VerifyLevel level);

struct Check {
    std::string name;    // "config", "secrets", "root key", "db key", "values"
    bool ok = false;
    std::string detail;  // one line
};

struct VerifyReport {
    VerifyLevel level = VerifyLevel::keys;
    std::vector<Check> checks;
    std::vector<std::string> warnings;
    std::optional<ScanReport> scan;  // at --level full
    std::optional<Error> error;      // the check that stopped verification, if one did
    ExitCode exit_code() const;
};

// Runs each check up to `level`; a failing check is recorded (with its error) and stops the run.
VerifyReport verify(const Target& target, VerifyLevel level, const ScanOptions& scan_options = {});
// The checks past `config` on an installation already open.
VerifyReport verify(Installation& inst, VerifyLevel level, const ScanOptions& scan_options = {});

}  // namespace ik::ops
