#include "ops/rotate_data_key.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include <unistd.h>

#include "crypto/seal.h"
#include "ops/db_key.h"
#include "ops/guard.h"
#include "ops/pipeline.h"
#include "ops/rekey.h"
#include "ops/release.h"
#include "util/error.h"
#include "util/files.h"

namespace ik::ops {
namespace {

constexpr const char* failpoint_prefix = "rotate-data-key";

// Values carry the key id of the wrapped db key; a new key whose wrapping shares the old id (one
// chance in 2^32) would make old and new values look alike, so it is drawn again.
providers::DbKey fresh_db_key(providers::RootKeyProvider& provider, const OpenDbKey& current) {
    providers::DbKey key = provider.generate_db_key();
    while (seal::key_id_of(key.wrapped) == current.key_id) key = provider.generate_db_key();
    return key;
}

// The plan's check of --backup FILE, so that the dry run predicts it: never over an existing file
// (exit 7), and only into a directory that can take it (exit 6, as a failed write would be).
void check_backup_target(const DataKeyOptions& options) {
    if (!options.backup) return;
    const std::string& path = *options.backup;
    if (files::exists(path))
        throw Error(ExitCode::refused, fmt::format("{} already exists; not overwriting it", path),
                    "choose another --backup file");
    std::string directory = std::filesystem::path(path).parent_path().string();
    if (directory.empty()) directory = ".";
    if (::access(directory.c_str(), W_OK | X_OK) != 0)
        fail(ExitCode::backup, "cannot write the backup {}: directory {}: {}", path, directory, std::strerror(errno));
}

// The plan's lines: what the one transaction will do.
void describe_plan(Installation& inst, const OpenDbKey& current, const RekeyPlan& plan, const DataKeyOptions& options,
                   DataKeyResult& result) {
    std::string would = options.dry_run ? "would " : "";
    result.lines.push_back(fmt::format("{}generate a new db key with {}", would, inst.provider->describe()));
    result.lines.push_back(fmt::format("{}replace dbkey row {} in {} in one transaction, re-sealing {} values:", would,
                                       current.row.id, inst.store().describe(), plan.values));
    for (const auto& [column, count] : plan.values_by_column)
        result.lines.push_back(fmt::format("  {} values in {}", count, column));
    if (options.backup)
        result.lines.push_back(fmt::format("{}back up the new db key to {} before the commit", would, *options.backup));
}

// --backup across the commit: written and proven just before it, taken back if it did not happen.
class NewKeyBackup {
public:
    NewKeyBackup(Installation& inst, const std::string& path, const BackupRecipients& to, DataKeyResult& result)
        : inst_(inst), path_(path), to_(to), result_(result) {}

    // The before-commit step: the new db key and the key rows as this transaction holds them.
    void write(const SecretBytes& db_key) {
        // From here a file at the path is ours (the plan saw none), even if proving it fails; one
        // that appeared since is refused by the write and stays.
        written_ = true;
        try {
            auto row = inst_.store().live_key(db_key_name);  // the updated row: same connection, same transaction
            if (!row) fail(ExitCode::internal, "the dbkey row in {} vanished inside the key change", inst_.store().describe());
            OpenDbKey next{*row, db_key, seal::key_id_of(row->encrypted)};
            Report report = write_backup_of(inst_, {path_, false}, next, inst_.store().live_keys(), to_);
            for (auto& line : report.lines) result_.lines.push_back(std::move(line));
        } catch (const Error& e) {
            if (e.code() == ExitCode::refused) written_ = false;
            throw;
        }
    }

    // The error to report for `cause`, a failure of the key change: a backup of a db key that never
    // committed would only mislead, so it goes; read back, never assumed, and kept when in doubt.
    Error undo(const Error& cause, const store::KeyRow& before) {
        if (!written_ || !files::exists(path_)) return cause;
        if (committed_since(inst_, before))
            return Error(cause.code(), fmt::format("{}; kept {}: it holds the new db key, which the database holds only if "
                                                   "the commit happened (`infra-keys backup --check {}` says whether it "
                                                   "is the live one)", cause.what(), path_, path_), cause.hint());
        if (std::remove(path_.c_str()) != 0)
            return Error(cause.code(), fmt::format("{}; {} holds a db key that was never committed: delete it",
                                                   cause.what(), path_), cause.hint());
        return Error(cause.code(), fmt::format("{}; undone: removed {}", cause.what(), path_), cause.hint());
    }

private:
    Installation& inst_;
    const std::string& path_;
    const BackupRecipients& to_;
    DataKeyResult& result_;
    bool written_ = false;
};

}  // namespace

DataKeyResult rotate_data_key(Installation& inst, const DataKeyOptions& options) {
    if (options.backup && !options.backup_to) fail(ExitCode::internal, "rotate-data-key: --backup without recipients");
    refuse_what_the_release_cannot_run(inst);
    ChangeLock lock = lock_and_check(inst, {options.server_stopped, false, 0});
    OpenDbKey current = open_db_key(inst);
    check_backup_target(options);

    // Plan: everything that can refuse, before the provider is asked for a key.
    DataKeyResult result;
    result.lines.on_line = options.on_step;
    KeyChange change = begin_key_change(inst.store(), current.row);
    RekeyPlan plan = plan_rekey(change, inst.store(), current);  // under the lock: also the census before
    refuse_blocking_values(plan, inst.store().describe());
    result.values = plan.values;
    describe_plan(inst, current, plan, options, result);
    if (options.dry_run) return result;

    providers::DbKey fresh = fresh_db_key(*inst.provider, current);
    seal::KeyId new_id = seal::key_id_of(fresh.wrapped);
    std::string root_key_id = inst.provider->root_key_id();
    KeyChangeTarget target{{fresh.wrapped, inst.provider->algorithm(), root_key_id},
                           fresh.plaintext,
                           reseal(current, fresh.plaintext, new_id, root_key_id),
                           [&](ByteView wrapped) { return inst.provider->unwrap(wrapped); },
                           {}};
    std::optional<NewKeyBackup> backup;
    if (options.backup) {
        backup.emplace(inst, *options.backup, *options.backup_to, result);
        target.before_commit = [&] { backup->write(fresh.plaintext); };
    }
    try {
        result.values = commit_key_change(change, inst.store(), current, target, failpoint_prefix).values;
    } catch (const Error& e) {
        change.tx.reset();
        if (backup) throw backup->undo(e, current.row);
        throw;
    }
    result.lines.push_back(fmt::format("dbkey row {} now wraps a new db key (key id {}); {} values re-sealed with it",
                                       current.row.id, seal::to_hex(new_id), result.values));
    return result;
}

}  // namespace ik::ops
