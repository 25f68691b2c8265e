#include "ops/backup.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <set>

#include <botan/hash.h>
#include <botan/hex.h>

#include <unistd.h>

#include "crypto/fingerprint.h"
#include "crypto/seal.h"
#include "ops/db_key.h"
#include "ops/guard.h"
#include "ops/release.h"
#include "ops/key_slots.h"
#include "ops/pipeline.h"
#include "ops/rekey.h"
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
backup::Contents contents_for(Installation& inst, const OpenDbKey& key, const std::vector<store::KeyRow>& live,
                              const std::optional<SecretBytes>& root_key) {
    backup::Contents contents;
    for (const auto& row : live) contents.rows.push_back(copy_of(row));
    contents.db_key = key.plaintext;
    contents.root_key = root_key;
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

enum class Age { older, newer, unknown };

// Whether the database's dbkey row was written before or after the backup was made: its updated_at
// against the backup's created_at, which has whole seconds; within that second, against the
// updated_at of the backup's own copy of the row.
Age database_age(const store::KeyRow& live, const backup::Metadata& meta, const backup::KeyRowCopy* saved) {
    constexpr int64_t second = 1'000'000'000;
    auto written = store::parse_timestamp(live.updated_at);
    auto made = store::parse_timestamp(meta.created_at);
    if (!written || !made) return Age::unknown;
    if (*written < *made) return Age::older;
    if (*written >= *made + second) return Age::newer;
    auto saved_at = saved ? store::parse_timestamp(saved->updated_at) : std::nullopt;
    if (!saved_at || *saved_at == *written) return Age::unknown;
    return *written > *saved_at ? Age::newer : Age::older;
}

std::string age_in_words(Age age, const store::KeyRow& live, const backup::Metadata& meta) {
    switch (age) {
    case Age::newer:
        return fmt::format("the database is newer than the backup: its dbkey row was written at {}, after the backup "
                           "was made ({})", live.updated_at, meta.created_at);
    case Age::older:
        return fmt::format("the database is older than the backup: its dbkey row was written at {}, before the backup "
                           "was made ({})", live.updated_at, meta.created_at);
    case Age::unknown: break;
    }
    return fmt::format("its dbkey row was written at {}; the backup was made at {}", live.updated_at, meta.created_at);
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

std::optional<SecretBytes> root_key_to_back_up(Installation& inst) {
    if (auto slots = key_slots(inst)) return slots->read(slots->key());
    return std::nullopt;
}

KeyChangeBackup::KeyChangeBackup(Installation& inst, const BackupTarget& target) : inst_(inst), target_(target) {
    const std::string& path = target.path;
    if (path == "-") fail(ExitCode::usage, "--backup needs a file; - (stdout) is for `infra-keys backup -o -`");
    if (files::exists(path))
        throw Error(ExitCode::refused, fmt::format("{} already exists; not overwriting it", path),
                    "choose another --backup FILE");
    std::string directory = std::filesystem::path(path).parent_path().string();
    if (directory.empty()) directory = ".";
    if (::access(directory.c_str(), W_OK | X_OK) != 0)
        fail(ExitCode::backup, "cannot write the backup {}: directory {}: {}", path, directory, std::strerror(errno));
}

std::vector<std::string> KeyChangeBackup::write(const OpenDbKey& next, const std::optional<SecretBytes>& root_key) {
    std::vector<store::KeyRow> rows = inst_.store().live_keys();
    for (auto& row : rows)
        if (row.id == next.row.id) row = next.row;
    backup::Contents contents = contents_for(inst_, next, rows, root_key);
    // From here a file at the path is ours (the plan saw none), even if proving it fails; one that
    // appeared since is refused by the write and stays.
    written_ = true;
    try {
        write_verified_backup(target_.path, /*force=*/false, metadata_for(inst_, next), contents, target_.to);
    } catch (const Error& e) {
        if (e.code() == ExitCode::refused) written_ = false;
        throw;
    }
    std::vector<std::string> lines = {fmt::format("backup of the new keys written to {} and re-opened: it holds the db key{}{}",
                                                  target_.path, root_key ? ", the root key" : "",
                                                  contents.retained_keys.empty() ? ""
                                                      : fmt::format(" and {} retained root key(s)", contents.retained_keys.size()))};
    for (const auto& r : target_.to.recipients) lines.push_back(fmt::format("backup opens with {}", r->describe()));
    return lines;
}

Error KeyChangeBackup::undo(const Error& cause, bool maybe_committed) const {
    const std::string& path = target_.path;
    if (!written_ || !files::exists(path)) return cause;
    if (maybe_committed)
        return Error(cause.code(), fmt::format("{}; kept {}: it holds the new keys, which the database holds only if the "
                                               "commit happened (`infra-keys backup --check {}` says whether they are the "
                                               "live ones)", cause.what(), path, path), cause.hint());
    if (std::remove(path.c_str()) != 0)
        return Error(cause.code(), fmt::format("{}; {} holds keys that were never committed: delete it", cause.what(), path),
                     cause.hint());
    return Error(cause.code(), fmt::format("{}; undone: removed {}", cause.what(), path), cause.hint());
}

namespace {

// The backup of `key` and the key rows `live` as they are given, proven against them.
Report write_backup_of(Installation& inst, const BackupOptions& options, const OpenDbKey& key,
                       const std::vector<store::KeyRow>& live, const BackupRecipients& to) {
    std::optional<SecretBytes> root_key = root_key_to_back_up(inst);
    backup::Contents contents = contents_for(inst, key, live, root_key);
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

}  // namespace

Report write_backup(Installation& inst, const BackupOptions& options, const BackupRecipients& to) {
    refuse_if_rotation_interrupted(inst);
    if (options.output != "-" && !options.force && files::exists(options.output))
        throw Error(ExitCode::refused, fmt::format("{} already exists; not overwriting it", options.output),
                    "choose another --output, or pass --force");
    OpenDbKey key = open_db_key(inst);
    return write_backup_of(inst, options, key, inst.store().live_keys(), to);
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

// How the backup stands to the database it is restored into; `restore --dry-run` names it.
enum class Fit { no_row, exact, database_newer, database_older, rewrapped };

const char* name_of(Fit fit) {
    switch (fit) {
    case Fit::no_row: return "no_row";
    case Fit::exact: return "exact";
    case Fit::database_newer: return "database_newer";
    case Fit::database_older: return "database_older";
    case Fit::rewrapped: return "rewrapped";
    }
    return "";
}

// Exit 5: the backup's db key is not the one sealing this database, so no key it holds can make it
// open. The hint points the way the times do.
Error cannot_restore(store::KeyStore& store, const store::KeyRow& live, const backup::Opened& opened, const std::string& why) {
    Age age = database_age(live, opened.meta, db_key_in(opened.contents));
    std::string hint = age == Age::newer ? fmt::format("use a backup made since {} (`infra-keys backup`), or check "
                                                       "--config names the right database", live.updated_at)
                       : age == Age::older ? fmt::format("use a backup made before {}, or restore the database from a "
                                                         "dump made after it", opened.meta.created_at)
                                           : "check --config names the right database, or use another backup";
    return Error(ExitCode::wrong_key,
                 fmt::format("cannot restore: the backup's db key (key id {}) is not the one sealing {}: {}; {}. Nothing "
                             "changed", opened.meta.db_key_id, store.describe(), why, age_in_words(age, live, opened.meta)),
                 hint);
}

// The db key the backup holds: stored in it (format 2), else (0.1.0's files) unwrapped from its own row.
std::optional<SecretBytes> db_key_of(Installation& inst, const backup::Contents& contents) {
    if (contents.db_key) return contents.db_key;
    const backup::KeyRowCopy* saved = db_key_in(contents);
    if (!saved) return std::nullopt;
    if (contents.root_key) return providers::make_native_in_memory(*contents.root_key)->try_unwrap(saved->encrypted);
    return inst.provider->try_unwrap(saved->encrypted);
}

// The configured root key's answer for the row; a native key that is missing or damaged opens
// nothing (that is what a restore mends).
std::optional<SecretBytes> configured_opens(Installation& inst, const store::KeyRow& live) {
    try {
        return inst.provider->try_unwrap(live.encrypted);
    } catch (const Error& e) {
        if (e.code() != ExitCode::provider || !inst.provider->key_storage()) throw;
        return std::nullopt;
    }
}

struct Match {
    Fit fit = Fit::no_row;
    std::optional<OpenDbKey> key;  // the live dbkey row with the db key it wraps, proven
    bool configured_opens = false;  // the installation opens already
    RekeyPlan plan;                // the values a re-wrap would re-key (when the backup's db key was proven by them)
};

// The backup's db key must be the one sealing the database's values: it opens them under the live
// row's key id. A database with no sealed value can only be matched by its row's identity.
RekeyPlan prove_seals_values(Installation& inst, const OpenDbKey& key, const backup::Opened& opened) {
    store::KeyStore& store = inst.store();
    RekeyPlan plan = plan_rekey(store, key);
    if (plan.values == 0) {
        bool fails = std::any_of(plan.blocking.begin(), plan.blocking.end(),
                                 [](const ValueProblem& p) { return p.reason == "authentication"; });
        const backup::KeyRowCopy* saved = db_key_in(opened.contents);
        bool same_row = saved && saved->id == key.row.id && saved->key_id == key.row.key_id &&
                        saved->created_at == key.row.created_at;
        if (fails)
            throw cannot_restore(store, key.row, opened,
                                 fmt::format("it opens none of the values sealed under key id {}", seal::to_hex(key.key_id)));
        if (!same_row)
            throw cannot_restore(store, key.row, opened, fmt::format("dbkey row {} is not the backup's and no sealed "
                                                                     "value proves the db key", key.row.id));
    }
    refuse_blocking_values(plan, store.describe());  // the right key, but some value would not carry over: exit 1
    return plan;
}

// The backup must fit the database before anything is written: the live row holds the backup's db
// key (re-wrapped or not), or there is no row and --with-db-key inserts the backup's.
Match match_backup(Installation& inst, const backup::Opened& opened, const RestoreOptions& options) {
    const backup::Contents& contents = opened.contents;
    store::KeyStore& store = inst.store(/*create=*/options.with_db_key);
    std::optional<store::KeyRow> live = store.has_key_table() ? store.live_key(db_key_name) : std::nullopt;
    const backup::KeyRowCopy* saved = db_key_in(contents);
    Match match;
    if (!live) {
        if (!saved) fail(ExitCode::backup, "the backup holds no dbkey row");
        if (!options.with_db_key)
            throw Error(ExitCode::refused, fmt::format("{} has no dbkey row; not restoring one without --with-db-key",
                                                       store.describe()),
                        "pass --with-db-key to insert the backup's key rows");
        unwrap_with_backup(inst, contents, saved->encrypted);  // proves the backup's own pair fits
        return match;
    }
    bool same_bytes = saved && saved->encrypted == live->encrypted;
    Age age = database_age(*live, opened.meta, saved);
    match.fit = same_bytes ? Fit::exact : age == Age::newer ? Fit::database_newer
                                        : age == Age::older ? Fit::database_older : Fit::rewrapped;
    std::optional<SecretBytes> held = db_key_of(inst, contents);
    if (held && held->size() != seal::key_size) fail(ExitCode::backup, "the backup's db key is {} bytes", held->size());
    std::optional<SecretBytes> opens = contents.root_key
                                           ? providers::make_native_in_memory(*contents.root_key)->try_unwrap(live->encrypted)
                                           : std::nullopt;
    if (auto configured = configured_opens(inst, *live)) {
        match.configured_opens = true;
        if (!opens) opens = std::move(configured);
    }
    if (opens) {
        if (held && *held != *opens)
            throw cannot_restore(store, *live, opened, fmt::format("dbkey row {} holds another db key", live->id));
        match.key = OpenDbKey{*live, std::move(*opens), seal::key_id_of(live->encrypted)};
        return match;
    }
    if (!held)
        throw cannot_restore(store, *live, opened, fmt::format("no key in the backup opens dbkey row {}", live->id));
    match.key = OpenDbKey{*live, std::move(*held), seal::key_id_of(live->encrypted)};
    match.plan = prove_seals_values(inst, *match.key, opened);
    return match;
}

// The case, for `restore` and `backup --check`.
std::string case_in_words(const Match& match, const backup::Opened& opened, store::KeyStore& store) {
    if (match.fit == Fit::no_row) return fmt::format("{} has no dbkey row; the backup's key rows go in", store.describe());
    const store::KeyRow& live = match.key->row;
    if (match.fit == Fit::exact)
        return fmt::format("exact match: dbkey row {} of {} is the backup's", live.id, store.describe());
    std::string what = match.fit == Fit::database_newer   ? "the database was rotated after the backup"
                       : match.fit == Fit::database_older ? "the database is older than the backup"
                                                          : "the dbkey row was re-wrapped since the backup";
    Age age = match.fit == Fit::database_newer ? Age::newer : match.fit == Fit::database_older ? Age::older : Age::unknown;
    return fmt::format("{}: dbkey row {} of {} holds the backup's db key (key id {}) under another wrapping; {}",
                       what, live.id, store.describe(), opened.meta.db_key_id, age_in_words(age, live, opened.meta));
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

// Whether the live row is no longer `before`: the re-wrap committed (or we cannot tell, so assume it).
bool row_changed(store::KeyStore& store, const store::KeyRow& before) {
    try {
        auto row = store.live_key(db_key_name);
        return !row || row->encrypted != before.encrypted;
    } catch (const Error&) {
        return true;
    }
}

}  // namespace

Report check_backup(Installation& inst, const std::string& path, const backup::Unlock& unlock) {
    backup::Opened opened = backup::open_any(read_backup_file(path), unlock);
    Report report;
    report.lines = describe(opened.meta);
    store::KeyRow live = require_db_key_row(inst.store());
    try {
        // The same proof restore makes: a backup that restores this database checks ok.
        Match match = match_backup(inst, opened, {});
        report.fit = name_of(match.fit);
        report.lines.push_back(fmt::format("check: ok: the backup holds the db key of dbkey row {} of {}", live.id,
                                           inst.store().describe()));
        if (match.fit != Fit::exact)
            report.lines.push_back(fmt::format("check: note: {}; `restore` re-wraps it",
                                               case_in_words(match, opened, inst.store())));
    } catch (const Error& e) {
        if (e.code() != ExitCode::wrong_key) throw;
        report.problems = true;
        report.lines.push_back(fmt::format("check: FAILED: {}", e.what()));
    }
    return report;
}

// Through the key-change pipeline: the same lock-and-check as rotate-root, the database lock held
// while the key changes, and a failure before the commit puts the replaced key back.
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

    // Plan: which case this is, proven, and where the db key goes — under the backup's root key,
    // installed in place of the configured native key; or, when the backup holds none or another
    // provider is configured, under the configured root key.
    Match match = match_backup(inst, opened, options);
    report.fit = name_of(match.fit);
    step("case: " + case_in_words(match, opened, inst.store()));
    bool insert_rows = match.fit == Fit::no_row;
    std::optional<KeySlots> slots = contents.root_key ? key_slots(inst) : std::nullopt;
    if (insert_rows && contents.root_key && !slots)
        fail(ExitCode::usage, "the backup holds a native root key but the configured provider is {}", inst.provider->kind());
    std::unique_ptr<providers::RootKeyProvider> backup_root =
        slots ? providers::make_native_in_memory(*contents.root_key) : nullptr;
    providers::RootKeyProvider& target = backup_root ? *backup_root : *inst.provider;

    std::optional<SecretBytes> current;
    bool install_key = false;
    if (slots) {
        current = slots->read(slots->key());
        if (current)
            step(fmt::format("root key: {} has fingerprint {}", slots->describe(slots->key()),
                             crypto::root_key_fingerprint(*current)));
        if (current && *current == *contents.root_key) {
            step(fmt::format("root key: the backup's root key is already installed at {}", slots->describe(slots->key())));
        } else if (match.configured_opens) {
            // The installed key opens the row already; the backup's older key has no business replacing it.
        } else if (current && !options.force) {
            throw Error(ExitCode::refused,
                        fmt::format("a different root key exists at {}; not replacing it", slots->describe(slots->key())),
                        "pass --force to replace it (the current one is kept beside it)");
        } else {
            install_key = true;
        }
    }
    bool rewrap = match.key && !match.configured_opens && !target.try_unwrap(match.key->row.encrypted);
    report.nothing_to_do = !install_key && !insert_rows && !rewrap;
    if (report.nothing_to_do) {
        step(match.configured_opens && match.fit != Fit::exact
                 ? fmt::format("restore: nothing to do: the configured root key already opens dbkey row {}, which holds "
                               "the backup's db key", match.key->row.id)
                 : std::string("restore: nothing to do: the backup's keys are already in place"));
        return report;
    }

    // Plan, continued: nobody may use the database, and nobody else may change its keys meanwhile.
    require_server_stopped(inst, options.server_stopped);
    store::KeyStore& store = inst.store();
    if (insert_rows && !store.has_key_table() && !options.dry_run) store.create_key_table();
    std::optional<KeyChange> change;
    std::unique_ptr<store::Transaction> tx;
    if (match.key) change.emplace(begin_key_change(store, match.key->row));
    else if (store.has_key_table()) tx = store.begin_exclusive();

    std::string kept = install_key && current ? slots->key() + ".replaced-" + utc_stamp() : "";
    if (!kept.empty()) step(fmt::format("{}keep the replaced root key as {}", verb, slots->describe(kept)));
    if (install_key) step(fmt::format("{}install the backup's root key at {}", verb, slots->describe(slots->key())));
    if (insert_rows)
        step(fmt::format("{}insert {} key rows from the backup into {}", verb, contents.rows.size(), store.describe()));
    if (rewrap) {
        step(fmt::format("{}re-wrap dbkey row {} in {} under {} in one transaction, re-keying {} values{}", verb,
                         match.key->row.id, store.describe(),
                         backup_root ? "the backup's root key" : inst.provider->describe(), match.plan.values,
                         match.plan.values_by_column.empty() ? "" : ":"));
        for (const auto& [column, count] : match.plan.values_by_column) step(fmt::format("  {} values in {}", count, column));
    }
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
        if (rewrap) {
            NewWrapping next{target.wrap(match.key->plaintext), inst.provider->algorithm(), inst.provider->root_key_id()};
            RekeyCounts counts = commit_rewrap(*change, store, *match.key, next,
                                               [&](ByteView w) { return target.unwrap(w); }, "restore");
            step(fmt::format("dbkey row {} re-wrapped; {} encrypted values re-keyed", match.key->row.id, counts.values));
        }
    } catch (const Error& e) {
        tx.reset();
        change.reset();
        bool committed = insert_rows ? store.has_key_table() && store.live_key(db_key_name).has_value()
                                     : rewrap && row_changed(store, match.key->row);
        if (keys && !committed) throw keys->undo(e);
        throw;
    }
    return report;
}

}  // namespace ik::ops
