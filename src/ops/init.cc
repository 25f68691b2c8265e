#include "ops/init.h"

#include <botan/system_rng.h>

#include "crypto/random.h"
#include "crypto/seal.h"
#include "ops/db_key.h"
#include "ops/key_slots.h"
#include "ops/pipeline.h"
#include "util/error.h"
#include "util/files.h"
#include "util/failpoint.h"

namespace ik::ops {
namespace {

uint64_t count_encrypted_values(store::KeyStore& store) {
    uint64_t n = 0;
    for (const auto& column : store.encrypted_columns()) n += store.count_values(column);
    return n;
}

// The server's ids: a positive 63-bit id and a positive 31-bit key_id (docs/infra-format.md §4).
int64_t random_positive(uint64_t mask) {
    uint64_t value = 0;
    while (value == 0) {
        Botan::system_rng().randomize(reinterpret_cast<uint8_t*>(&value), sizeof value);
        value &= mask;
    }
    return static_cast<int64_t>(value);
}

void refuse_if_existing_row_unusable(Installation& inst, const store::KeyRow& row) {
    if (!inst.provider->root_key_exists())
        throw Error(ExitCode::provider,
                    fmt::format("dbkey row {} exists but its root key does not: {}", row.id, inst.provider->describe()),
                    "restore the root key with `infra-keys restore BACKUP`; creating a new one would lose every "
                    "encrypted value");
    if (!inst.provider->try_unwrap(row.encrypted))
        throw Error(ExitCode::wrong_key,
                    fmt::format("dbkey row {} is not wrapped by the configured root key ({}); refusing to "
                                "re-initialise", row.id, inst.provider->describe()),
                    "this is the wrong root key: restore the right one (`infra-keys restore`) or point "
                    "dbEncryptionKey at it");
}

bool uses_sqlite(const Installation& inst) { return !inst.config.uses_postgres() && !inst.db_url; }

bool sqlite_file_missing(const Installation& inst) {
    return uses_sqlite(inst) && !files::exists(inst.config.db_file);
}

// An existing SQLite file with neither the key table nor any table the server seals values in is
// someone else's (a typo in dbFile): adding a key table would modify it. A new installation has
// no file yet. (An empty PostgreSQL database is how a new PostgreSQL installation starts.)
void refuse_if_not_infra(store::KeyStore& store) {
    if (!store.encrypted_columns().empty()) return;
    throw Error(ExitCode::database,
                fmt::format("{} is not an Infra database (none of the Infra server's tables); refusing to add "
                            "encryption_keys to it", store.describe()),
                "check dbFile in the config; for a new installation name a file that does not exist yet");
}

// The one transaction: a new db key wrapped by the root key, read back before it commits.
void insert_db_key_row(Installation& inst, store::KeyStore& store) {
    auto tx = store.begin_exclusive();
    if (tx->live_key(db_key_name)) fail(ExitCode::refused, "a dbkey row appeared in {} while init ran; run init again", store.describe());
    providers::DbKey db_key = inst.provider->generate_db_key();
    store::KeyRow row;
    row.id = random_positive(0x7fffffffffffffffULL);
    row.key_id = random_positive(0x7fffffffULL);
    row.name = db_key_name;
    row.encrypted = db_key.wrapped;
    row.algorithm = inst.provider->algorithm();
    row.root_key_id = inst.provider->root_key_id();
    row.created_at = row.updated_at = store::now_timestamp();
    tx->insert_key(row);

    // Verify before commit: the row as stored must unwrap to the key we generated.
    auto stored = tx->live_key(db_key_name);
    if (!stored || inst.provider->unwrap(stored->encrypted) != db_key.plaintext)
        fail(ExitCode::database, "the dbkey row written to {} does not read back; nothing committed", store.describe());
    failpoint("init-before-commit");
    tx->commit();
}

// Read back after a failure: a dbkey row there (or a database we cannot read) means keep the key.
bool store_has_db_key(store::KeyStore& store) {
    try {
        return store.has_key_table() && store.live_key(db_key_name).has_value();
    } catch (const Error&) {
        return true;
    }
}

}  // namespace

InitPlan plan_init(Installation& inst) {
    InitPlan plan;
    // A missing SQLite file is created by apply_init, never by planning (--dry-run writes nothing).
    std::string database = sqlite_file_missing(inst) ? fmt::format("new sqlite {}", inst.config.db_file)
                                                     : inst.store().describe();
    plan.create_key_table = sqlite_file_missing(inst) || !inst.store().has_key_table();
    if (plan.create_key_table && uses_sqlite(inst) && !sqlite_file_missing(inst)) refuse_if_not_infra(inst.store());
    if (!plan.create_key_table) {
        store::KeyStore& store = inst.store();
        if (auto row = store.live_key(db_key_name)) {
            refuse_if_existing_row_unusable(inst, *row);
            return plan;
        }
        if (uint64_t values = count_encrypted_values(store); values > 0)
            throw Error(ExitCode::refused,
                        fmt::format("{} has {} encrypted values but no dbkey row; a new db key would not decrypt them",
                                    store.describe(), values),
                        "restore the db key with `infra-keys restore BACKUP --with-db-key`");
    }

    plan.create_root_key = !inst.provider->root_key_exists();
    plan.create_db_key = true;
    if (plan.create_root_key) plan.steps.push_back(fmt::format("create root key: {}", inst.provider->describe()));
    if (plan.create_key_table) plan.steps.push_back(fmt::format("create table encryption_keys in {}", database));
    plan.steps.push_back(fmt::format("create db key: a dbkey row in {} wrapped by {}", database,
                                     inst.provider->describe()));
    return plan;
}

void apply_init(Installation& inst, const InitPlan& plan) {
    if (plan.nothing_to_do()) return;
    store::KeyStore& store = inst.store(/*create=*/true);
    // Stage: a native root key created here is taken back if the dbkey row does not commit.
    auto slots = key_slots(inst);
    std::optional<StagedKeys> keys;
    if (slots) keys.emplace(*slots);
    try {
        if (plan.create_root_key) {
            if (keys) keys->create(slots->key(), crypto::random_key(seal::key_size));
            else inst.provider->create_root_key();
        }
        failpoint("init-after-root-key");
        if (plan.create_key_table) store.create_key_table();
        insert_db_key_row(inst, store);
    } catch (const Error& e) {
        if (keys && !store_has_db_key(store)) throw keys->undo(e);
        throw;
    }
}

}  // namespace ik::ops
