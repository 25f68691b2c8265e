#include "ops/db_key.h"

#include <optional>
#include <string_view>

#include "util/error.h"

namespace ik::ops {

store::KeyRow require_db_key_row(store::KeyStore& store) {
    if (!store.has_key_table())
        throw Error(ExitCode::database,
                    fmt::format("{} has no encryption_keys table; is this an Infra database?", store.describe()),
                    "start the Infra server once, or run `infra-keys init`");
    auto row = store.live_key(db_key_name);
    if (!row)
        throw Error(ExitCode::database, fmt::format("{} has no live dbkey row in encryption_keys", store.describe()),
                    "run `infra-keys init` for a new installation, or `infra-keys restore --with-db-key` from a backup");
    return *row;
}

namespace {

// Which provider wrote a row, as far as its bytes and algorithm tell: for naming a mismatch with
// the configured provider instead of calling the row malformed or the key wrong.
std::optional<std::string> provider_that_wrote(const store::KeyRow& row) {
    std::string_view bytes(reinterpret_cast<const char*>(row.encrypted.data()), row.encrypted.size());
    if (bytes.substr(0, 7) == "vault:v" || row.algorithm == "aes256-gcm96") return "vault";
    if (row.algorithm == "aesgcm") return "native";
    if (row.algorithm == "AES_256" || row.algorithm == "AES_128" || row.algorithm == "SYMMETRIC_DEFAULT") return "awskms";
    return std::nullopt;
}

}  // namespace

OpenDbKey open_db_key(providers::RootKeyProvider& provider, const store::KeyRow& row) {
    SecretBytes plaintext;
    try {
        plaintext = provider.unwrap(row.encrypted);
    } catch (const Error& e) {
        auto writer = provider_that_wrote(row);
        if ((e.code() != ExitCode::database && e.code() != ExitCode::wrong_key) || !writer || *writer == provider.kind())
            throw;
        throw Error(ExitCode::wrong_key,
                    fmt::format("dbkey row {} was wrapped by the {} provider (algorithm {}), but the config uses the {} "
                                "provider", row.id, *writer, row.algorithm, provider.kind()),
                    fmt::format("set dbEncryptionKeyProvider: {} (with its keys: entry) as the server had it; to move "
                                "between providers use `infra-keys rewrap --from-config OLD.yaml`", *writer));
    }
    OpenDbKey key{row, std::move(plaintext), seal::key_id_of(row.encrypted)};
    if (key.plaintext.size() != seal::key_size)
        fail(ExitCode::database, "dbkey row {} unwraps to {} bytes; a db key must be {} bytes", row.id,
             key.plaintext.size(), seal::key_size);
    return key;
}

Error root_key_missing(providers::RootKeyProvider& provider) {
    if (provider.key_storage())  // a key kept as a secret: it can be restored from a backup
        return Error(ExitCode::provider, fmt::format("root key not found: {}", provider.describe()),
                     "restore it with `infra-keys restore BACKUP`, or run `infra-keys init` for a new installation");
    return Error(ExitCode::provider, fmt::format("root key not found or not enabled: {}", provider.describe()),
                 "create or enable the key in the provider, or point dbEncryptionKey at the right one");
}

OpenDbKey open_db_key(Installation& inst) {
    store::KeyRow row = require_db_key_row(inst.store());
    try {
        return open_db_key(*inst.provider, row);
    } catch (const Error& e) {
        // Which database's row the key does not open: with several installations, the first question.
        if (e.code() != ExitCode::wrong_key) throw;
        throw Error(e.code(), fmt::format("{}: dbkey row {} in {}", e.what(), row.id, inst.store().describe()), e.hint());
    }
}

}  // namespace ik::ops
