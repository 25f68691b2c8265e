#include "store/key_store.h"

#include <chrono>

#include <fmt/format.h>

#include "config/config.h"
#include "store/postgres.h"

namespace ik::store {

const std::vector<EncryptedColumn>& known_encrypted_columns() {
    static const std::vector<EncryptedColumn> columns = {
        {"providers", "client_secret", false},
        {"provider_users", "access_token", false},
        {"provider_users", "refresh_token", false},
        {"root_certificates", "private_key", false},
        {"root_certificates", "signed_cert", false},
        {"settings", "private_jwk", true},
        {"destination_credentials", "bearer_token", false},
        {"providers", "private_key", false},
        {"organizations", "private_jwk", true},
    };
    return columns;
}

std::vector<EncryptedColumn> present_encrypted_columns(const std::function<bool(const EncryptedColumn&)>& has) {
    std::vector<EncryptedColumn> present;
    for (const auto& c : known_encrypted_columns())
        if (has(c)) present.push_back(c);
    return present;
}

std::optional<KeyRow> first_row(std::vector<KeyRow> rows) {
    if (rows.empty()) return std::nullopt;
    return std::move(rows.front());
}

// Go's "2006-01-02 15:04:05.999999999-07:00" (the layout the server's SQLite driver writes):
// nanoseconds with trailing zeros trimmed, and no fraction at all when it is zero.
std::string now_timestamp() {
    using namespace std::chrono;
    auto now = time_point_cast<nanoseconds>(system_clock::now());
    auto seconds = floor<std::chrono::seconds>(now);
    auto nanos = (now - seconds).count();
    std::string fraction;
    if (nanos > 0) {
        fraction = fmt::format(".{:09d}", nanos);
        while (fraction.back() == '0') fraction.pop_back();
    }
    auto day = floor<days>(seconds);
    year_month_day ymd{day};
    hh_mm_ss<std::chrono::seconds> time{seconds - day};
    return fmt::format("{:04d}-{:02d}-{:02d} {:02d}:{:02d}:{:02d}{}+00:00", static_cast<int>(ymd.year()),
                       static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()), time.hours().count(),
                       time.minutes().count(), time.seconds().count(), fraction);
}

std::unique_ptr<KeyStore> open(const config::Config& cfg, const std::string& db_password, bool create,
                               const std::optional<std::string>& db_url, DbUrlRole role) {
    if (db_url && role == DbUrlRole::reaches_config) return open_postgres_reached_at(cfg, db_password, *db_url);
    if (db_url) return open_postgres(*db_url, "");
    if (!cfg.db_connection_string.empty()) return open_postgres_connection_string(cfg.db_connection_string, db_password);
    if (cfg.uses_postgres()) return open_postgres(connection_params(cfg, db_password));
    return open_sqlite(cfg.db_file, create);
}

}  // namespace ik::store
