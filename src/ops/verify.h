// `verify`: proves, without writing anything, that an installation's keys and values decrypt.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "ops/installation.h"
#include "ops/release.h"
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
    std::optional<Release> release;  // detected from the migrations table (level keys and full)
    std::optional<Census> census;    // at --level full
    std::vector<ValueProblem> problems;  // the census's and the release check's, in table, column, row order
    uint64_t problem_count = 0;          // all of them (each column names at most problems_named)
    // The columns worth a line: those the release seals and those holding any payload.
    std::vector<const ColumnCensus*> reported_columns() const;
    std::optional<Error> error;      // the check that stopped verification, if one did
    ExitCode exit_code() const;
};

// Runs each check up to `level`; a failing check is recorded (with its error) and stops the run.
// `census_options` supplies threads and progress; verify decides what is listed.
VerifyReport verify(const Target& target, VerifyLevel level, const CensusOptions& census_options = {});
// The checks past `config` on an installation already open.
VerifyReport verify(Installation& inst, VerifyLevel level, const CensusOptions& census_options = {});

// The census `status` shows: payloads per column and key id, told apart by key id alone (no key
// needed, nothing decrypted).
Census census_by_key_id(Installation& inst, const std::optional<Release>& release);

// A column's values as verify counts them: payloads, plus plaintext where the release seals.
uint64_t counted_values(const ColumnCensus& c);
uint64_t counted_failures(const ColumnCensus& c);

}  // namespace ik::ops
