#include "ops/backup.h"

#include <cerrno>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <iterator>
#include <set>

#include <botan/hash.h>
#include <botan/hex.h>

#include "crypto/fingerprint.h"
#include "crypto/seal.h"
#include "ops/db_key.h"
#include "ops/guard.h"
#include "ops/release.h"
#include "ops/key_slots.h"
#include "ops/pipeline.h"
#include "providers/native.h"
#include "util/error.h"
#include "util/failpoint.h"
#include "util/files.h"
#include "util/output.h"

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

backup::Metadata metadata_for(Installation& inst, const OpenDbKey& key) {
    backup::Metadata m;
    m.provider_kind = inst.provider->kind();
    m.root_key_id = inst.provider->root_key_id();
    for (const auto& [name, value] : inst.config.active_provider().options)
        if (!secret_options.count(name)) m.provider_settings[name] = value;
    m.db_key_id = seal::to_hex(key.key_id);
    m.db_key_sha256 = sha256_hex(key.row.encrypted);
    m.database = inst.store().identity();
    return m;
}

// Everything a restore may need: the rows, the db key itself, and (native) the root key and
// every retained previous key, so a backup outlives rotations until those keys are retired.
backup::Contents contents_for(Installation& inst, const OpenDbKey& key, const std::vector<store::KeyRow>& live) {
    backup::Contents contents;
    for (const auto& row : live) contents.rows.push_back(copy_of(row));
    contents.db_key = key.plaintext;
    if (auto* native = native_of(inst)) contents.root_key = native->root_key();
    if (auto slots = key_slots(inst))
        for (const auto& retained : slots->retained())
            if (auto bytes = slots->read(retained)) contents.retained_keys.push_back({slots->describe(retained), *bytes});
    return contents;
}

// The proof a backup is good: it holds the live rows and the db key, and opens the live db key.
void prove_matches_live(Installation& inst, const backup::Opened& opened, const std::vector<store::KeyRow>& live,
                        const OpenDbKey& key) {
    const backup::Contents& contents = opened.contents;
    if (contents.rows.size() != live.size())
        fail(ExitCode::backup, "the backup written holds {} key rows, the database {}", contents.rows.size(), live.size());
    for (size_t i = 0; i < live.size(); ++i)
        if (!(contents.rows[i] == copy_of(live[i])))
            fail(ExitCode::backup, "the backup written differs from encryption_keys row {}", live[i].id);
    if (contents.db_key != key.plaintext || unwrap_with_backup(inst, contents, key.row.encrypted) != key.plaintext)
        fail(ExitCode::backup, "the backup written does not open the live db key");
}

std::string fingerprint_or_none(const std::optional<SecretBytes>& key) {
    return key ? crypto::root_key_fingerprint(*key) : "none (the root key never leaves the provider)";
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

std::vector<std::string> describe(const backup::Metadata& m) {
    std::vector<std::string> lines = {
        fmt::format("format      {}", m.format == "age" ? fmt::format("age v1, infra-keys backup document v{}", m.format_version) : m.format),
        fmt::format("created     {} by infra-keys {}", m.created_at, m.tool_version),
        fmt::format("provider    {} (root key id {})", m.provider_kind, m.root_key_id),
        fmt::format("db key      key id {}, wrapped sha256 {}", m.db_key_id, m.db_key_sha256),
        fmt::format("database    {}", m.database),
    };
    if (!m.root_key_fingerprint.empty()) lines.push_back(fmt::format("root key    fingerprint {}", m.root_key_fingerprint));
    if (m.argon2)
        lines.push_back(fmt::format("kdf         Argon2id m={} KiB t={} p={}", m.argon2->memory_kib, m.argon2->iterations,
                                    m.argon2->parallelism));
    return lines;
}

namespace {

struct Encrypted {
    std::string bytes;
    SecretBytes file_key;
};

void require_same_keys(const backup::Contents& found, const backup::Contents& meant) {
    if (found.root_key != meant.root_key || found.retained_keys != meant.retained_keys || found.db_key != meant.db_key ||
        found.rows != meant.rows)
        fail(ExitCode::backup, "the backup written does not hold the keys it was given");
}

backup::Unlock by_file_key(const SecretBytes& file_key) {
    backup::Unlock unlock;
    unlock.identities.push_back(age::file_key_identity(file_key));
    return unlock;
}

// The file for `to`, proven in memory — by its file key, so a writer holding only public keys
// can prove it too — to open to exactly `contents`.
Encrypted encrypt_proven(const backup::Metadata& meta, const backup::Contents& contents, const BackupRecipients& to) {
    std::vector<const age::Recipient*> recipients;
    for (const auto& r : to.recipients) recipients.push_back(r.get());
    Encrypted out;
    out.bytes = backup::write_age(meta, contents, recipients, &out.file_key);
    require_same_keys(backup::open_any(out.bytes, by_file_key(out.file_key)).contents, contents);
    return out;
}

}  // namespace

backup::Opened write_verified_backup(const std::string& path, bool force, const backup::Metadata& meta,
                                     const backup::Contents& contents, const BackupRecipients& to) {
    Encrypted file = encrypt_proven(meta, contents, to);
    for (const auto& stale : files::stale_temp_files_of(path))
        if (std::remove(stale.c_str()) == 0)
            out::result("removed the stale temp file {} (a backup copy left by a killed run)", stale);
    try {
        if (force) files::write_atomic(path, as_bytes(file.bytes), 0600);
        else files::write_new(path, as_bytes(file.bytes), 0600);
    } catch (const files::FileError& e) {
        // An existing file is a refusal to overwrite it; anything else, the output we could not write.
        throw Error(e.error_number() == EEXIST ? ExitCode::refused : ExitCode::backup, e.what(),
                    e.error_number() == EEXIST ? "pass --force to replace it" : "");
    }
    failpoint("backup-after-write");
    // Prove what is on disk, not what was in memory; with a passphrase, the way a restore opens it.
    backup::Unlock reopen = by_file_key(file.file_key);
    if (to.passphrase) reopen = backup::Unlock{to.passphrase, {}};
    backup::Opened opened = backup::open_any(read_backup_file(path), reopen);
    require_same_keys(opened.contents, contents);
    return opened;
}

Report write_backup(Installation& inst, const BackupOptions& options, const BackupRecipients& to) {
    refuse_if_rotation_interrupted(inst);
    if (options.output != "-" && !options.force && files::exists(options.output))
        throw Error(ExitCode::refused, fmt::format("{} already exists; not overwriting it", options.output),
                    "choose another --output, or pass --force");
    OpenDbKey key = open_db_key(inst);
    return write_backup_of(inst, options, key, inst.store().live_keys(), to);
}

Report write_backup_of(Installation& inst, const BackupOptions& options, const OpenDbKey& key,
                       const std::vector<store::KeyRow>& live, const BackupRecipients& to) {
    backup::Contents contents = contents_for(inst, key, live);
    backup::Metadata meta = metadata_for(inst, key);

    Report report;
    if (options.output == "-") {
        Encrypted file = encrypt_proven(meta, contents, to);
        prove_matches_live(inst, backup::open_any(file.bytes, by_file_key(file.file_key)), live, key);
        std::fwrite(file.bytes.data(), 1, file.bytes.size(), stdout);
        std::fflush(stdout);
    } else {
        prove_matches_live(inst, write_verified_backup(options.output, options.force, meta, contents, to), live, key);
        report.lines.push_back(fmt::format("backup: wrote {} (0600, age format)", options.output));
    }
    for (const auto& r : to.recipients) report.lines.push_back(fmt::format("backup: opens with {}", r->describe()));
    report.lines.push_back(fmt::format("backup: {} key rows, the db key{}{}; verified: it opens the db key of {}",
                                       live.size(), contents.root_key ? " and the root key" : "",
                                       contents.retained_keys.empty() ? ""
                                           : fmt::format(" and {} retained root key(s)", contents.retained_keys.size()),
                                       inst.store().describe()));
    if (contents.root_key)
        report.lines.push_back(fmt::format("backup: root key fingerprint {}", crypto::root_key_fingerprint(*contents.root_key)));
    else
        report.lines.push_back(fmt::format("backup: the {} root key never leaves the provider; this backup needs it "
                                           "to be restored", inst.provider->kind()));
    return report;
}

Report check_backup(Installation& inst, const std::string& path, const backup::Unlock& unlock) {
    backup::Opened opened = backup::open_any(read_backup_file(path), unlock);
    const backup::Contents& contents = opened.contents;
    Report report;
    report.lines = describe(opened.meta);
    store::KeyRow live = require_db_key_row(inst.store());
    const backup::KeyRowCopy* saved = db_key_in(contents);
    try {
        SecretBytes from_backup = unwrap_with_backup(inst, contents, live.encrypted);
        report.lines.push_back(fmt::format("check: ok: the backup opens dbkey row {} of {}", live.id, inst.store().describe()));
        // Its root key still opens the row, but the db key it carries is another (rotate-data-key
        // since it was made): restoring it gives back the root key, never the values' key.
        if (contents.db_key && *contents.db_key != from_backup)
            report.lines.push_back("check: note: the db key in this backup is not the live db key (rotate-data-key "
                                   "replaced it since, or never committed it)");
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

Report check_backup_offline(const std::string& path, const backup::Unlock& unlock) {
    backup::Opened opened = backup::open_any(read_backup_file(path), unlock);
    const backup::Contents& contents = opened.contents;
    const backup::Metadata& meta = opened.meta;
    Report report;
    report.lines = describe(meta);
    auto problem = [&report](std::string line) {
        report.problems = true;
        report.lines.push_back("check: FAILED: " + line);
    };
    const backup::KeyRowCopy* row = db_key_in(contents);
    if (!row) {
        problem("the backup holds no dbkey row");
        return report;
    }
    if (sha256_hex(row->encrypted) != meta.db_key_sha256) problem("db_key.wrapped_sha256 is not the hash of its dbkey row");
    if (seal::to_hex(seal::key_id_of(row->encrypted)) != meta.db_key_id) problem("db_key.key_id is not its dbkey row's key id");
    if (contents.root_key) {
        try {
            SecretBytes unwrapped = providers::make_native_in_memory(*contents.root_key)->unwrap(row->encrypted);
            if (contents.db_key && unwrapped != *contents.db_key) problem("its root key unwraps its dbkey row into another db key");
            else report.lines.push_back("check: ok: its root key unwraps its dbkey row");
        } catch (const Error& e) {
            problem(fmt::format("its root key does not unwrap its dbkey row: {}", e.what()));
        }
    } else {
        report.lines.push_back(fmt::format("check: note: the {} root key is not in the backup; only the provider can "
                                           "unwrap the dbkey row", meta.provider_kind));
    }
    for (const auto& retained : contents.retained_keys)
        report.lines.push_back(fmt::format("retained    {} fingerprint {}", retained.id, crypto::root_key_fingerprint(retained.key)));
    if (!report.problems)
        report.lines.push_back(fmt::format("check: ok (offline): {} key rows{}; not compared with any database",
                                           contents.rows.size(), contents.db_key ? ", the db key" : ""));
    return report;
}

Report inspect_backup(const std::string& path) {
    Report report;
    report.lines = backup::inspect(read_backup_file(path));
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
Report restore(Installation& inst, const std::string& path, const backup::Unlock& unlock, const RestoreOptions& options) {
    // The server check waits until there is something to change: "nothing to do" is never refused.
    ChangeLock lock = lock_and_check(inst, {/*server_stopped=*/true, false, 3 * seal::key_size});
    backup::Opened opened = backup::open_any(read_backup_file(path), unlock);
    const backup::Contents& contents = opened.contents;
    Report report;
    auto step = [&](std::string line) {
        if (options.on_step) options.on_step(line);
        report.lines.push_back(std::move(line));
    };
    step(fmt::format("backup: {}, created {}; root key fingerprint {}", opened.meta.format, opened.meta.created_at,
                     fingerprint_or_none(contents.root_key)));
    std::string verb = options.dry_run ? "would " : "";
    refuse_what_the_release_cannot_run(inst);

    std::optional<store::KeyRow> live = check_backup_fits(inst, contents, options);
    bool insert_rows = !live;
    std::optional<KeySlots> slots;
    std::optional<SecretBytes> current;
    bool install_key = false;
    if (contents.root_key) {
        slots.emplace(restore_slots(inst));
        current = slots->read(slots->key());
        if (current)
            step(fmt::format("root key: {} has fingerprint {}", slots->describe(slots->key()),
                             crypto::root_key_fingerprint(*current)));
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
