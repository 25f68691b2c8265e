#include "ops/release.h"

#include <algorithm>
#include <array>

#include <fmt/format.h>

#include "ops/installation.h"
#include "util/docdir.h"
#include "util/error.h"

namespace ik::ops {
namespace {

using Version = std::array<int, 3>;

// The migration ids each release added (docs/infra-releases.md): a database holds those of its
// release and of every earlier one (v0.14.3 squashed the oldest, so only newer ids are telling).
struct Migrations {
    Version version;
    std::string first, last;
    std::vector<std::string> ids;
};

const std::vector<Migrations>& migration_table() {
    static const std::vector<Migrations> table = {
        {{0, 13, 0}, "v0.13.0", "v0.13.1", {}},  // 202203231621 … 202204291613: matched by range below
        {{0, 13, 2}, "v0.13.2", "v0.13.3", {"202206081027"}},
        {{0, 13, 4}, "v0.13.4", "v0.13.5", {"202206151027", "202206161733"}},
        {{0, 13, 6}, "v0.13.6", "v0.13.6", {"202206281027", "202207041724"}},
        {{0, 14, 0}, "v0.14.0", "v0.14.1", {"202207081217"}},
        {{0, 14, 2}, "v0.14.2", "v0.14.2", {"202207270000"}},
        {{0, 14, 3}, "v0.14.3", "v0.14.x", {"2022-06-08T10:27-fixed", "2022-07-28T12:46"}},
        {{0, 15, 0}, "v0.15.0", "v0.15.1",
         {"2022-07-21T18:28", "2022-07-27T15:54", "2022-08-04T17:72", "2022-08-10T13:35", "2022-08-11T11:52",
          "2022-08-12T11:05", "2022-08-30T11:45"}},
        {{0, 15, 2}, "v0.15.2", "v0.15.x", {"2022-09-01T15:00"}},
        {{0, 16, 0}, "v0.16.0", "v0.16.1",
         {"2022-09-22T11:00", "2022-09-22T13:00:00", "2022-09-28T13:00", "2022-10-04T11:44", "2022-10-05T11:12",
          "2022-10-05T18:00:00", "2022-10-06T14:58", "2022-10-17T12:40", "2022-10-17T18:00"}},
        {{0, 17, 0}, "v0.17.0", "v0.17.0", {"2022-11-01T16:39", "2022-11-02T15:30", "2022-11-03T13:00", "2022-11-07T14:00"}},
        {{0, 17, 1}, "v0.17.1", "v0.17.x", {"2022-11-10T17:30"}},
        {{0, 18, 0}, "v0.18.0", "v0.18.0", {"2022-11-15T10:00"}},
        {{0, 18, 1}, "v0.18.1", "v0.18.x", {"2022-11-21T11:00"}},
        {{0, 19, 0}, "v0.19.0", "v0.19.0", {"2022-10-26T18:00", "2022-11-17T14:00", "2022-11-22T14:00"}},
        {{0, 20, 0}, "v0.20.0", "v0.20.0", {"2022-11-25T14:46", "2022-12-01T11:36", "2022-12-03T13:14", "2022-12-13T13:13"}},
        {{0, 21, 0}, "v0.21.0", "v0.21.0", {"2023-01-05T17:33", "2023-01-12T17:00", "2023-01-17T11:36", "2023-01-18T10:26"}},
    };
    return table;
}

bool is_v0_13_0_id(const std::string& id) {
    return id.size() == 12 && std::all_of(id.begin(), id.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
           id >= "202203231621" && id <= "202204291613";
}

bool from(const Version& v, const Version& first) { return v >= first; }
bool through(const Version& v, const Version& last) { return v <= last; }

// The columns a release seals: the model fields typed EncryptedAtRest(Bytes) at that release.
std::vector<store::EncryptedColumn> sealed_columns(const Version& v) {
    std::vector<store::EncryptedColumn> columns = {
        {"providers", "client_secret", false},
        {"provider_users", "access_token", false},
        {"provider_users", "refresh_token", false},
    };
    if (through(v, {0, 13, 3})) {
        columns.push_back({"root_certificates", "private_key", false});
        columns.push_back({"root_certificates", "signed_cert", false});
    }
    if (through(v, {0, 20, 0})) columns.push_back({"settings", "private_jwk", true});
    if (from(v, {0, 14, 0})) columns.push_back({"providers", "private_key", false});
    // Plaintext in v0.16.x; gone from v0.20.0.
    if (from(v, {0, 17, 0}) && through(v, {0, 19, 0}))
        columns.push_back({"device_flow_auth_requests", "access_key_token", false});
    if (from(v, {0, 20, 0})) columns.push_back({"destination_credentials", "bearer_token", false});
    if (from(v, {0, 21, 0})) columns.push_back({"organizations", "private_jwk", true});
    return columns;
}

Release release_of(const Migrations& m) {
    Release r;
    r.first = m.first;
    r.last = m.last;
    r.sealed = sealed_columns(m.version);
    r.seals_empty_strings = !from(m.version, {0, 18, 1});
    r.has_sqlite = !from(m.version, {0, 15, 2});
    r.native_file_only = from(m.version, {0, 21, 0});
    r.literal_db_password = from(m.version, {0, 21, 0});
    return r;
}

}  // namespace

bool Release::seals(const std::string& table, const std::string& column) const {
    return std::any_of(sealed.begin(), sealed.end(),
                       [&](const store::EncryptedColumn& c) { return c.table == table && c.column == column; });
}

const std::vector<Release>& release_families() {
    static const std::vector<Release> families = [] {
        std::vector<Release> out;
        for (const auto& m : migration_table()) out.push_back(release_of(m));
        return out;
    }();
    return families;
}

std::optional<Release> detect_release(const std::vector<std::string>& ids) {
    const auto& table = migration_table();
    for (size_t i = table.size(); i-- > 0;) {
        bool found = std::any_of(ids.begin(), ids.end(), [&](const std::string& id) {
            if (table[i].ids.empty()) return is_v0_13_0_id(id);
            return std::find(table[i].ids.begin(), table[i].ids.end(), id) != table[i].ids.end();
        });
        if (found) return release_families()[i];
    }
    return std::nullopt;
}

std::optional<Release> detect_release(store::KeyStore& store) {
    auto ids = store.migration_ids();
    if (!ids) return std::nullopt;
    return detect_release(*ids);
}

CensusOptions census_options(const std::optional<Release>& release) {
    CensusOptions options;
    if (release) {
        options.listed = [r = *release](const store::EncryptedColumn& c) { return r.seals(c.table, c.column); };
        options.name_unlisted = true;
        options.release = "Infra " + release->name();
    } else {
        options.listed = [](const store::EncryptedColumn& c) {
            const auto& known = store::known_encrypted_columns();
            return std::any_of(known.begin(), known.end(), [&](const store::EncryptedColumn& k) {
                return k.table == c.table && k.column == c.column;
            });
        };
    }
    return options;
}

std::vector<std::string> release_conflicts(const Release& release, const Installation& inst) {
    std::vector<std::string> conflicts;
    const auto& cfg = inst.config;
    if (!release.has_sqlite && !cfg.uses_postgres() && !inst.db_url)
        conflicts.push_back(fmt::format("the database is Infra {}, which runs on PostgreSQL only, but the config points "
                                        "at the SQLite file {}; set dbHost or dbConnectionString as the server has them",
                                        release.name(), cfg.db_file));
    if (release.native_file_only) {
        auto provider = cfg.active_provider();
        std::string storage = provider.get("secretprovider", "file");
        if (provider.kind != "native" || storage != "file")
            conflicts.push_back(fmt::format("the database is Infra {}, which accepts only a native root key in a file; "
                                            "the configured {} would keep that server from starting",
                                            release.name(), provider.kind == "native" ?
                                                "native root key in secret storage " + storage : provider.kind + " provider"));
    }
    return conflicts;
}

void refuse_what_the_release_cannot_run(Installation& inst) {
    auto release = detect_release(inst.store());
    if (!release) return;
    auto conflicts = release_conflicts(*release, inst);
    if (!conflicts.empty())
        throw Error(ExitCode::refused, conflicts.front() + "; nothing changed",
                    "what each Infra release runs on: \"Supported Infra releases\" in " INFRA_KEYS_DOCDIR "/README.md");
}

}  // namespace ik::ops
