// Which Infra release wrote a database, told from its `migrations` table, and what that release
// seals and supports (docs/infra-releases.md, "Supported Infra releases" in the README).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "ops/scan.h"
#include "store/key_store.h"

namespace ik::ops {

struct Installation;

// A release family: the releases from `first` up to (not including) the next family's first,
// which all share one migration list and so look the same in the database.
struct Release {
    std::string first;  // "v0.18.1"
    std::string last;   // "v0.18.x" style upper bound for messages, e.g. "v0.19.0" (inclusive)
    std::vector<store::EncryptedColumn> sealed;  // the columns this family seals with the db key
    bool seals_empty_strings = false;            // before v0.18.1 '' is sealed too (both are accepted)
    bool has_sqlite = false;                     // the SQLite driver was removed in v0.15.2
    bool native_file_only = false;               // v0.21.0: no awskms/vault/Kubernetes root keys
    bool literal_db_password = false;            // v0.21.0: dbPassword is not a secret reference
    std::string name() const { return first == last ? first : first + " – " + last; }
    bool seals(const std::string& table, const std::string& column) const;
};

// The family whose migrations are the newest found in `ids`; nullopt when none is known (no
// Infra migrations, or a release older than v0.13.0).
std::optional<Release> detect_release(const std::vector<std::string>& ids);
// Every family, oldest first.
const std::vector<Release>& release_families();

// The database's release, read from its `migrations` table (nullopt: no table, or no known id).
std::optional<Release> detect_release(store::KeyStore& store);

// How a census checks values against `release`: its sealed columns are the listed ones and sealed
// values elsewhere are named. Unknown release: the columns known to be sealed in some release are
// listed, and nothing else is named.
CensusOptions census_options(const std::optional<Release>& release);

// What the detected release cannot run with this configuration, in words (empty: nothing).
std::vector<std::string> release_conflicts(const Release& release, const Installation& inst);
// ik::Error(refused) naming the first conflict, before a command changes keys for a release that
// could not use the result.
void refuse_what_the_release_cannot_run(Installation& inst);

}  // namespace ik::ops
