#include "ops/backup.h"

#include <cstdio>
#include <ctime>
#include <iostream>
#include <iterator>
#include <set>

#include <botan/hash.h>
#include <botan/hex.h>

#include "ops/db_key.h"
#include "ops/guard.h"
#include "ops/release.h"
#include "ops/key_slots.h"
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
    auto text = files::read_text(path);
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
        if (options.force) files::write_atomic(options.output, as_bytes(bytes), 0600);
        else files::write_new(options.output, as_bytes(bytes), 0600);
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

Report restore(Installation& inst, const std::string& path, const SecretBytes& passphrase, const RestoreOptions& options) {
    refuse_if_rotation_interrupted(inst);
    backup::Header header;
    backup::Contents contents = backup::open(read_backup_file(path), passphrase, &header);
    Report report;
    std::string verb = options.dry_run ? "would " : "";

    // 1. The backup must fit the database before anything is written.
    store::KeyStore& store = inst.store(/*create=*/options.with_db_key);
    refuse_what_the_release_cannot_run(inst);
    std::optional<store::KeyRow> live = store.has_key_table() ? store.live_key(db_key_name) : std::nullopt;
    const backup::KeyRowCopy* saved = db_key_in(contents);
    bool insert_rows = false;
    if (live) {
        try {
            unwrap_with_backup(inst, contents, live->encrypted);
        } catch (const Error& e) {
            if (e.code() != ExitCode::wrong_key) throw;
            throw Error(ExitCode::wrong_key,
                        fmt::format("the backup does not open dbkey row {} of {}; it belongs to another installation "
                                    "or an older wrapping. Nothing changed", live->id, store.describe()),
                        "check --config points at the right database, or use a newer backup");
        }
    } else {
        if (!saved) fail(ExitCode::backup, "the backup holds no dbkey row");
        if (!options.with_db_key)
            throw Error(ExitCode::refused, fmt::format("{} has no dbkey row; not restoring one without --with-db-key",
                                                       store.describe()),
                        "pass --with-db-key to insert the backup's key rows");
        unwrap_with_backup(inst, contents, saved->encrypted);  // proves the backup's own pair fits
        insert_rows = true;
    }

    if (insert_rows && !options.dry_run) require_server_stopped(inst, options.server_stopped);

    // 2. The root key (native only: a remote provider keeps its own).
    auto* native = native_of(inst);
    bool install_key = false;
    if (contents.root_key) {
        if (!native) fail(ExitCode::usage, "the backup holds a native root key but the configured provider is {}", inst.provider->kind());
        std::optional<SecretBytes> current = native->root_key_exists() ? std::optional(native->root_key()) : std::nullopt;
        if (current && *current == *contents.root_key) {
            report.lines.push_back(fmt::format("root key: the backup's root key is already installed at {}", native->describe()));
        } else if (current && !options.force) {
            throw Error(ExitCode::refused,
                        fmt::format("a different root key exists at {}; not replacing it", native->describe()),
                        "pass --force to replace it (the current one is kept beside it)");
        } else {
            install_key = true;
        }
        if (install_key && current) {
            auto slots = key_slots(inst);
            if (!slots) fail(ExitCode::internal, "no key slots for the native root key {}", native->describe());
            std::string kept = slots->key() + ".replaced-" + utc_stamp();
            report.lines.push_back(fmt::format("{}keep the replaced root key as {}", verb, slots->describe(kept)));
            if (!options.dry_run) {
                slots->create(kept, *current);
                failpoint("restore-after-keep-replaced");
            }
        }
        if (install_key) {
            report.lines.push_back(fmt::format("{}install the backup's root key at {}", verb, native->describe()));
            if (!options.dry_run) {
                native->install_root_key(*contents.root_key);
                failpoint("restore-after-install-key");
            }
        }
    }

    // 3. The key rows, in one transaction, proven with the installed key before commit.
    if (insert_rows) {
        report.lines.push_back(fmt::format("{}insert {} key rows from the backup into {}", verb, contents.rows.size(),
                                           store.describe()));
        if (!options.dry_run) {
            if (!store.has_key_table()) store.create_key_table();
            auto tx = store.begin_exclusive();
            if (tx->live_key(db_key_name)) fail(ExitCode::refused, "a dbkey row appeared in {} meanwhile; nothing written", store.describe());
            for (const auto& row : contents.rows) tx->insert_key(row_of(row));
            auto stored = tx->live_key(db_key_name);
            if (!stored || inst.provider->unwrap(stored->encrypted) != unwrap_with_backup(inst, contents, saved->encrypted))
                fail(ExitCode::database, "the restored dbkey row does not open with the configured root key; nothing committed");
            failpoint("restore-before-commit");
            tx->commit();
        }
    }
    report.nothing_to_do = !install_key && !insert_rows;
    if (report.nothing_to_do) report.lines.push_back("restore: nothing to do: the backup's keys are already in place");
    return report;
}

}  // namespace ik::ops
