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

// --backup: the new db key and the key rows as this transaction holds them, proven to open it.
void back_up_new_key(Installation& inst, const DataKeyOptions& options, const providers::DbKey& fresh,
                     DataKeyResult& result) {
    auto row = inst.store().live_key(db_key_name);  // the updated row: same connection, same transaction
    if (!row) fail(ExitCode::internal, "the dbkey row in {} vanished inside the key change", inst.store().describe());
    OpenDbKey next{*row, fresh.plaintext, seal::key_id_of(row->encrypted)};
    Report report = write_backup_of(inst, {*options.backup, false}, next, inst.store().live_keys(), *options.backup_to);
    for (auto& line : report.lines) result.lines.push_back(std::move(line));
}

// A failure before the commit: the transaction is rolled back; a backup of a db key that never
// committed would only mislead, so it goes too.
Error undo_backup(const Error& cause, const std::string& path) {
    if (std::remove(path.c_str()) != 0)
        return Error(cause.code(), fmt::format("{}; {} holds a db key that was never committed: delete it", cause.what(), path),
                     cause.hint());
    return Error(cause.code(), fmt::format("{}; undone: removed {}", cause.what(), path), cause.hint());
}

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
    RekeyPlan plan = plan_rekey(inst.store(), current);
    refuse_blocking_values(plan, inst.store().describe());
    KeyChange change = begin_key_change(inst.store(), current.row);
    result.values = plan.values;
    describe_plan(inst, current, plan, options, result);
    if (options.dry_run) return result;

    providers::DbKey fresh = fresh_db_key(*inst.provider, current);
    seal::KeyId new_id = seal::key_id_of(fresh.wrapped);
    std::string root_key_id = inst.provider->root_key_id();
    bool backup_written = false;
    KeyChangeTarget target{{fresh.wrapped, inst.provider->algorithm(), root_key_id},
                           fresh.plaintext,
                           reseal(current, fresh.plaintext, new_id, root_key_id),
                           [&](ByteView wrapped) { return inst.provider->unwrap(wrapped); },
                           {}};
    if (options.backup)
        target.before_commit = [&] {
            // From here a file at the path is ours (the plan saw none), even if proving it fails;
            // one that appeared since is refused by the write and stays.
            backup_written = true;
            try {
                back_up_new_key(inst, options, fresh, result);
            } catch (const Error& e) {
                if (e.code() == ExitCode::refused) backup_written = false;
                throw;
            }
        };
    try {
        RekeyCounts counts = commit_key_change(change, inst.store(), current, target, failpoint_prefix);
        result.values = counts.values;
    } catch (const Error& e) {
        change.tx.reset();
        // Read back, never assume: a row that may have committed keeps the backup of its key.
        if (backup_written && files::exists(*options.backup)) {
            if (!committed_since(inst, current.row)) throw undo_backup(e, *options.backup);
            throw Error(e.code(), fmt::format("{}; kept {}: it holds the new db key, which the database holds only if the "
                                              "commit happened (`infra-keys backup --check {}` says whether it is the live one)",
                                              e.what(), *options.backup, *options.backup), e.hint());
        }
        throw;
    }
    result.lines.push_back(fmt::format("dbkey row {} now wraps a new db key (key id {}); {} values re-sealed with it",
                                       current.row.id, seal::to_hex(new_id), result.values));
    return result;
}

}  // namespace ik::ops
