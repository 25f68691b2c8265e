#include "store/key_store.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>

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

std::optional<int64_t> parse_timestamp(std::string_view text) {
    using namespace std::chrono;
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0, consumed = 0;
    std::string copy(text);
    if (std::sscanf(copy.c_str(), "%4d-%2d-%2d%*1[ T]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &consumed) != 6) return std::nullopt;
    std::string_view rest = text.substr(static_cast<size_t>(consumed));
    int64_t nanos = 0;
    if (rest.starts_with('.')) {
        size_t digits = 1;
        for (; digits < rest.size() && std::isdigit(static_cast<unsigned char>(rest[digits])); ++digits)
            if (digits <= 9) nanos = nanos * 10 + (rest[digits] - '0');
        for (size_t pad = digits; pad <= 9; ++pad) nanos *= 10;
        rest.remove_prefix(digits);
    }
    int offset_minutes = 0;
    if (rest == "Z" || rest.empty()) {
    } else if ((rest[0] == '+' || rest[0] == '-') && rest.size() >= 3) {
        // +HH, +HHMM or +HH:MM
        std::string digits;
        for (char c : rest.substr(1))
            if (c != ':') digits += c;
        if ((digits.size() != 2 && digits.size() != 4) ||
            !std::all_of(digits.begin(), digits.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
            return std::nullopt;
        int minutes_east = std::stoi(digits.substr(0, 2)) * 60 + (digits.size() == 4 ? std::stoi(digits.substr(2)) : 0);
        offset_minutes = (rest[0] == '-' ? -1 : 1) * minutes_east;
    } else {
        return std::nullopt;
    }
    year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
    if (!ymd.ok()) return std::nullopt;
    auto at = sys_days{ymd} + hours{h} + minutes{mi} + seconds{s} - minutes{offset_minutes};
    return duration_cast<nanoseconds>(at.time_since_epoch()).count() + nanos;
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
