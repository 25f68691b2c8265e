#include "ops/rotate_data_key.h"


#include "crypto/seal.h"
#include "ops/db_key.h"
#include "ops/guard.h"
#include "ops/pipeline.h"
#include "ops/rekey.h"
#include "ops/release.h"
#include "util/error.h"

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

// The plan's lines: what the one transaction will do.
void describe_plan(Installation& inst, const OpenDbKey& current, const RekeyPlan& plan, const DataKeyOptions& options,
                   DataKeyResult& result) {
    std::string would = options.dry_run ? "would " : "";
    result.lines.push_back(fmt::format("{}generate a new db key with {}", would, inst.provider->describe()));
    std::string what = plan.counted ? fmt::format("{} values:", plan.values) : "every value sealed by it";
    result.lines.push_back(fmt::format("{}replace dbkey row {} in {} in one transaction, re-sealing {}", would,
                                       current.row.id, inst.store().describe(), what));
    append_counts(plan.values_by_column, result.lines);
    if (options.backup)
        result.lines.push_back(fmt::format("{}back up the new db key to {} before the commit", would, options.backup->path));
}

// The before-commit step of --backup: the new db key and the key rows as this transaction holds them.
void back_up_new_key(Installation& inst, KeyChangeBackup& backup, const SecretBytes& db_key, DataKeyResult& result) {
    auto row = inst.store().live_key(db_key_name);  // the updated row: same connection, same transaction
    if (!row) fail(ExitCode::internal, "the dbkey row in {} vanished inside the key change", inst.store().describe());
    for (auto& line : backup.write({*row, db_key, seal::key_id_of(row->encrypted)}, root_key_to_back_up(inst)))
        result.lines.push_back(std::move(line));
}

}  // namespace

DataKeyResult rotate_data_key(Installation& inst, const DataKeyOptions& options) {
    refuse_what_the_release_cannot_run(inst);
    ChangeLock lock = lock_and_check(inst, {options.server_stopped, false, 0});
    OpenDbKey current = open_db_key(inst);
    std::optional<KeyChangeBackup> backup;
    if (options.backup) backup.emplace(inst, *options.backup);

    // Plan: everything that can refuse, before the provider is asked for a key.
    DataKeyResult result;
    result.lines.on_line = options.on_step;
    KeyChange change = begin_key_change(inst.store(), current.row);
    // Nothing is staged outside the transaction: a real run's census can ride on the rewrite.
    RekeyPlan plan = plan_rewrite(inst.store(), current, options.dry_run);
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
    if (backup) target.before_commit = [&] { back_up_new_key(inst, *backup, fresh.plaintext, result); };
    RekeyCounts counts;
    try {
        counts = commit_key_change(change, inst.store(), current, target, failpoint_prefix);
    } catch (const Error& e) {
        change.tx.reset();
        if (backup) throw backup->undo(e, committed_since(inst, current.row));
        throw;
    }
    result.values = counts.values;
    result.lines.push_back(fmt::format("dbkey row {} now wraps a new db key (key id {}); {} values re-sealed with it{}",
                                       current.row.id, seal::to_hex(new_id), counts.values, counts.values ? ":" : ""));
    append_counts(counts.values_by_column, result.lines);
    return result;
}

}  // namespace ik::ops
