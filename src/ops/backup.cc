#include "ops/backup.h"

#include <cerrno>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <iterator>
#include <set>

#include <botan/hash.h>
#include <botan/hex.h>

#include "crypto/seal.h"
#include "ops/db_key.h"
#include "ops/guard.h"
#include "ops/key_slots.h"
#include "ops/pipeline.h"
#include "providers/native.h"
#include "util/error.h"
#include "util/failpoint.h"
#include "util/files.h"

namespace ik::ops {
namespace {

// Never copied into a backup header: these options hold secret references or credentials.
const std::set<std::string> secret_options = {"accesskeyid", "secretaccesskey", "token"};

std::string sha256_hex(ByteView bytes) {
    auto hash = Botan::HashFunction::create_or_throw("SHA-256");
    hash->update(bytes.data(), bytes.size());
    return Botan::hex_encode(hash->final(), false);
}

backup::KeyRowCopy copy_of(const store::KeyRow& r) {
    return {r.id, r.key_id, r.name, r.encrypted, r.algorithm, r.root_key_id, r.created_at, r.updated_at};
}

store::KeyRow row_of(const backup::KeyRowCopy& r) {
    return {r.id, r.key_id, r.name, r.encrypted, r.algorithm, r.root_key_id, r.created_at, r.updated_at};
}

providers::NativeProvider* native_of(Installation& inst) {
    return dynamic_cast<providers::NativeProvider*>(inst.provider.get());
}

const backup::KeyRowCopy* db_key_in(const backup::Contents& contents) {
    for (const auto& row : contents.rows)
        if (row.name == db_key_name) return &row;
    return nullptr;
}

// The db key the backup opens: with its own root key (native), else with the configured provider.
SecretBytes unwrap_with_backup(Installation& inst, const backup::Contents& contents, ByteView wrapped) {
    if (contents.root_key) {
        auto holder = providers::make_native_in_memory(*contents.root_key);
        return holder->unwrap(wrapped);
    }
    return inst.provider->unwrap(wrapped);
}

backup::Header header_for(Installation& inst, const OpenDbKey& key) {
    backup::Header h;
    h.provider_kind = inst.provider->kind();
    h.root_key_id = inst.provider->root_key_id();
    for (const auto& [name, value] : inst.config.active_provider().options)
        if (!secret_options.count(name)) h.provider_settings[name] = value;
    h.db_key_id = seal::to_hex(key.key_id);
    h.db_key_sha256 = sha256_hex(key.row.encrypted);
    h.database = inst.store().identity();
    return h;
}

// The proof a backup is good: it decrypts, holds the live rows, and opens the live db key.
void prove_matches_live(Installation& inst, std::string_view bytes, const SecretBytes& passphrase,
                        const std::vector<store::KeyRow>& live, const OpenDbKey& key) {
    backup::Contents contents = backup::open(bytes, passphrase);
    if (contents.rows.size() != live.size())
        fail(ExitCode::backup, "the backup written holds {} key rows, the database {}", contents.rows.size(), live.size());
    for (size_t i = 0; i < live.size(); ++i)
        if (!(contents.rows[i] == copy_of(live[i])))
            fail(ExitCode::backup, "the backup written differs from encryption_keys row {}", live[i].id);
    if (unwrap_with_backup(inst, contents, key.row.encrypted) != key.plaintext)
        fail(ExitCode::backup, "the backup written does not open the live db key");
}

}  // namespace

std::string read_backup_file(const std::string& path) {
    if (path == "-") return std::string(std::istreambuf_iterator<char>(std::cin), {});
    std::optional<std::string> text;
    try {
        text = files::read_text(path);
    } catch (const files::FileError& e) {
        throw Error(ExitCode::backup, e.what());
    }
    if (!text) fail(ExitCode::backup, "backup file {} does not exist", path);
    return *text;
}

std::vector<std::string> describe(const backup::Header& h) {
    return {
        fmt::format("format      infra-keys backup v{}", h.format_version),
        fmt::format("created     {} by infra-keys {}", h.created_at, h.tool_version),
        fmt::format("provider    {} (root key id {})", h.provider_kind, h.root_key_id),
        fmt::format("root key    {}", h.contains_root_key ? "included" : "not included: it never leaves the provider"),
        fmt::format("db key      key id {}, wrapped sha256 {}", h.db_key_id, h.db_key_sha256),
        fmt::format("database    {}", h.database),
        fmt::format("kdf         Argon2id m={} KiB t={} p={}", h.kdf.memory_kib, h.kdf.iterations, h.kdf.parallelism),
    };
}

Report write_backup(Installation& inst, const BackupOptions& options, const SecretBytes& passphrase) {
    refuse_if_rotation_interrupted(inst);
    if (options.output != "-" && !options.force && files::exists(options.output))
        throw Error(ExitCode::refused, fmt::format("{} already exists; not overwriting it", options.output),
                    "choose another --output, or pass --force");
    OpenDbKey key = open_db_key(inst);
    std::vector<store::KeyRow> live = inst.store().live_keys();

    backup::Header header = header_for(inst, key);
    if (options.kdf) header.kdf = *options.kdf;
    backup::Contents contents;
    for (const auto& row : live) contents.rows.push_back(copy_of(row));
    if (auto* native = native_of(inst)) contents.root_key = native->root_key();

    std::string bytes = backup::write(header, contents, passphrase);
    prove_matches_live(inst, bytes, passphrase, live, key);

    Report report;
    if (options.output == "-") {
        std::fwrite(bytes.data(), 1, bytes.size(), stdout);
        std::fflush(stdout);
    } else {
        try {
            if (options.force) files::write_atomic(options.output, as_bytes(bytes), 0600);
            else files::write_new(options.output, as_bytes(bytes), 0600);
        } catch (const files::FileError& e) {
            // An existing file is a refusal to overwrite it; anything else, the output we could not write.
            throw Error(e.error_number() == EEXIST ? ExitCode::refused : ExitCode::backup, e.what(),
                        e.error_number() == EEXIST ? "pass --force to replace it" : "");
        }
        failpoint("backup-after-write");
        // Prove what is on disk, not what was in memory.
        prove_matches_live(inst, read_backup_file(options.output), passphrase, live, key);
        report.lines.push_back(fmt::format("backup: wrote {} (0600)", options.output));
    }
    report.lines.push_back(fmt::format("backup: {} key rows{}; verified: it opens the db key of {}", live.size(),
                                       contents.root_key ? " and the root key" : "", inst.store().describe()));
    if (!contents.root_key)
        report.lines.push_back(fmt::format("backup: the {} root key never leaves the provider; this backup needs it "
                                           "to be restored", inst.provider->kind()));
    return report;
}

Report check_backup(Installation& inst, const std::string& path, const SecretBytes& passphrase) {
    std::string bytes = read_backup_file(path);
    backup::Header header;
    backup::Contents contents = backup::open(bytes, passphrase, &header);
    Report report;
    report.lines = describe(header);
    store::KeyRow live = require_db_key_row(inst.store());
    const backup::KeyRowCopy* saved = db_key_in(contents);
    try {
        SecretBytes from_backup = unwrap_with_backup(inst, contents, live.encrypted);
        (void)from_backup;
        report.lines.push_back(fmt::format("check: ok: the backup opens dbkey row {} of {}", live.id, inst.store().describe()));
    } catch (const Error& e) {
        if (e.code() != ExitCode::wrong_key) throw;
        report.problems = true;
        report.lines.push_back(fmt::format("check: FAILED: the backup does not open dbkey row {} of {}", live.id,
                                           inst.store().describe()));
    }
    if (!saved || saved->encrypted != live.encrypted)
        report.lines.push_back("check: note: the database's dbkey row was re-wrapped since this backup was made");
    return report;
}

namespace {

// Where the backup's root key goes: the configured native key's slots (usage error otherwise).
KeySlots restore_slots(Installation& inst) {
    auto slots = key_slots(inst);
    if (!slots) fail(ExitCode::usage, "the backup holds a native root key but the configured provider is {}", inst.provider->kind());
    return *slots;
}

// Step 1: the backup must fit the database before anything is written. The live row, if any.
std::optional<store::KeyRow> check_backup_fits(Installation& inst, const backup::Contents& contents,
                                               const RestoreOptions& options) {
    store::KeyStore& store = inst.store(/*create=*/options.with_db_key);
    std::optional<store::KeyRow> live = store.has_key_table() ? store.live_key(db_key_name) : std::nullopt;
    if (live) {
        bool opens = contents.root_key ? providers::make_native_in_memory(*contents.root_key)->try_unwrap(live->encrypted).has_value()
                                       : inst.provider->try_unwrap(live->encrypted).has_value();
        if (!opens)
            throw Error(ExitCode::wrong_key,
                        fmt::format("the backup does not open dbkey row {} of {}; it belongs to another installation "
                                    "or an older wrapping. Nothing changed", live->id, store.describe()),
                        "check --config points at the right database, or use a newer backup");
        return live;
    }
    const backup::KeyRowCopy* saved = db_key_in(contents);
    if (!saved) fail(ExitCode::backup, "the backup holds no dbkey row");
    if (!options.with_db_key)
        throw Error(ExitCode::refused, fmt::format("{} has no dbkey row; not restoring one without --with-db-key",
                                                   store.describe()),
                    "pass --with-db-key to insert the backup's key rows");
    unwrap_with_backup(inst, contents, saved->encrypted);  // proves the backup's own pair fits
    return std::nullopt;
}

// Step 3: the key rows in one transaction, proven with the installed key before commit.
void insert_key_rows(Installation& inst, const backup::Contents& contents, std::unique_ptr<store::Transaction> tx) {
    const backup::KeyRowCopy* saved = db_key_in(contents);
    store::KeyStore& store = inst.store();
    if (tx->live_key(db_key_name)) fail(ExitCode::refused, "a dbkey row appeared in {} meanwhile; nothing written", store.describe());
    for (const auto& row : contents.rows) tx->insert_key(row_of(row));
    auto stored = tx->live_key(db_key_name);
    if (!stored || inst.provider->unwrap(stored->encrypted) != unwrap_with_backup(inst, contents, saved->encrypted))
        fail(ExitCode::database, "the restored dbkey row does not open with the configured root key; nothing committed");
    failpoint("restore-before-commit");
    tx->commit();
}

}  // namespace

// Through the key-change pipeline: the same lock-and-check as rotate-root, the database lock held
// while the key changes, and a failure before the rows commit puts the replaced key back.
Report restore(Installation& inst, const std::string& path, const SecretBytes& passphrase, const RestoreOptions& options) {
    // The server check waits until there is something to change: "nothing to do" is never refused.
    ChangeLock lock = lock_and_check(inst, {/*server_stopped=*/true, false, 3 * seal::key_size});
    backup::Header header;
    backup::Contents contents = backup::open(read_backup_file(path), passphrase, &header);
    Report report;
    auto step = [&](std::string line) {
        if (options.on_step) options.on_step(line);
        report.lines.push_back(std::move(line));
    };
    std::string verb = options.dry_run ? "would " : "";

    std::optional<store::KeyRow> live = check_backup_fits(inst, contents, options);
    bool insert_rows = !live;
    std::optional<KeySlots> slots;
    std::optional<SecretBytes> current;
    bool install_key = false;
    if (contents.root_key) {
        slots.emplace(restore_slots(inst));
        current = slots->read(slots->key());
        if (current && *current == *contents.root_key) {
            step(fmt::format("root key: the backup's root key is already installed at {}",
                                               slots->describe(slots->key())));
        } else if (current && !options.force) {
            throw Error(ExitCode::refused,
                        fmt::format("a different root key exists at {}; not replacing it", slots->describe(slots->key())),
                        "pass --force to replace it (the current one is kept beside it)");
        } else {
            install_key = true;
        }
    }
    report.nothing_to_do = !install_key && !insert_rows;
    if (report.nothing_to_do) {
        step("restore: nothing to do: the backup's keys are already in place");
        return report;
    }

    // Plan, continued: nobody may use the database, and nobody else may change its keys meanwhile.
    require_server_stopped(inst, options.server_stopped);
    store::KeyStore& store = inst.store();
    if (insert_rows && !store.has_key_table() && !options.dry_run) store.create_key_table();
    std::optional<KeyChange> change;
    std::unique_ptr<store::Transaction> tx;
    if (live) change.emplace(begin_key_change(store, *live));
    else if (store.has_key_table()) tx = store.begin_exclusive();

    std::string kept = install_key && current ? slots->key() + ".replaced-" + utc_stamp() : "";
    if (!kept.empty()) step(fmt::format("{}keep the replaced root key as {}", verb, slots->describe(kept)));
    if (install_key)
        step(fmt::format("{}install the backup's root key at {}", verb, slots->describe(slots->key())));
    if (insert_rows)
        step(fmt::format("{}insert {} key rows from the backup into {}", verb, contents.rows.size(),
                                           store.describe()));
    if (options.dry_run) return report;

    // Stage, then commit.
    std::optional<StagedKeys> keys;
    if (slots) keys.emplace(*slots);
    try {
        if (!kept.empty()) {
            keys->create(kept, *current);
            failpoint("restore-after-keep-replaced");
        }
        if (install_key) {
            keys->replace(slots->key(), *contents.root_key);
            failpoint("restore-after-install-key");
        }
        if (insert_rows) insert_key_rows(inst, contents, std::move(tx));
    } catch (const Error& e) {
        tx.reset();
        change.reset();
        bool rows_committed = insert_rows && store.has_key_table() && store.live_key(db_key_name).has_value();
        if (keys && !rows_committed) throw keys->undo(e);
        throw;
    }
    return report;
}

}  // namespace ik::ops
