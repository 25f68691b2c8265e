// PostgreSQL connection settings built from the server config (internal to the store library).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "store/key_store.h"

namespace ik::store {

// libpq keyword/value pairs, later ones overriding earlier ones (PQconnectdbParams semantics).
using ConnectionParams = std::vector<std::pair<std::string, std::string>>;

// Connects with separate keywords, so a password is never spliced into a conninfo string.
std::unique_ptr<KeyStore> open_postgres(const ConnectionParams& params);

// The server's dbConnectionString (v0.15.0+), with dbPassword as the password it does not give.
std::unique_ptr<KeyStore> open_postgres_connection_string(const std::string& conninfo, const std::string& db_password);

// The server's dbHost/dbPort/dbName/dbUsername/dbPassword/dbParameters as libpq keywords.
ConnectionParams connection_params(const config::Config& cfg, const std::string& db_password);
// The config's database (fields or dbConnectionString, and `db_password`) with the keywords of
// `db_url` (a connection string or URI) winning over them.
std::unique_ptr<KeyStore> open_postgres_reached_at(const config::Config& cfg, const std::string& db_password,
                                                   const std::string& db_url);

}  // namespace ik::store
