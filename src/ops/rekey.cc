#include "ops/rekey.h"

#include <algorithm>
#include <memory>

#include "ops/release.h"
#include "util/error.h"
#include "util/failpoint.h"

namespace ik::ops {
namespace {

std::vector<ValueProblem> blocking_of(const Census& census) {
    std::vector<ValueProblem> out;
    for (const auto& p : census.problems)
        if (blocks_rekey(p)) out.push_back(p);
    return out;
}

std::vector<std::pair<std::string, uint64_t>> sealed_by_column(const Census& census) {
    std::vector<std::pair<std::string, uint64_t>> out;
    for (const auto& c : census.columns)
        if (c.sealed > 0) out.emplace_back(c.column.name(), c.sealed);
    return out;
}

// `count` counts the values past the ones named (a census names at most problems_named per column).
Error blocking_values_error(const std::vector<ValueProblem>& blocking, uint64_t count, const std::string& database) {
    const ValueProblem& first = blocking.front();
    count = std::max<uint64_t>(count, blocking.size());
    std::string more = count > 1 ? fmt::format(" and {} more", count - 1) : "";
    return Error(ExitCode::problems,
                 fmt::format("{}.{} row {} in {} does not open with the db key ({}: {}){}; re-keying would hide the "
                             "damage, so nothing changed",
                             first.table, first.column, first.row, database, first.reason, first.detail, more),
                 "run `infra-keys verify --level full` to list every such value, fix or clear them, then run again");
}

// One pass over every table that can hold a sealed value, carrying each value sealed by the old
// row over with `transform`: the values carried, per column, in the census's column order.
RekeyCounts carry_over(store::Transaction& tx, store::KeyStore& store, const ValueTransform& transform) {
    RekeyCounts counts;
    for (const auto& table : store.text_columns()) {
        auto rewritten = tx.rewrite_values(table.columns, transform);
        for (size_t i = 0; i < table.columns.size(); ++i) {
            if (rewritten[i] == 0) continue;
            counts.values_by_column.emplace_back(table.columns[i].name(), rewritten[i]);
            counts.values += rewritten[i];
        }
    }
    return counts;
}

// The proof before commit, from the census under the new row: every value sealed there opens, and
// each column holds what the pass carried over (`carried`, if it ran), no more (a trigger's copy)
// and no fewer.
std::optional<Error> disproof(const RekeyCounts* carried, const Census& after, store::KeyStore& store) {
    auto blocking = blocking_of(after);
    if (!blocking.empty())
        return Error(ExitCode::database,
                     fmt::format("after re-keying, {}.{} row {} in {} does not open under the new dbkey row ({}); "
                                 "nothing committed", blocking.front().table, blocking.front().column,
                                 blocking.front().row, store.describe(), blocking.front().reason));
    if (carried && sealed_by_column(after) != carried->values_by_column)
        return Error(ExitCode::database,
                     fmt::format("after re-keying, {} holds {} values sealed under the new dbkey row where {} were "
                                 "carried over; nothing committed", store.describe(), after.sealed(), carried->values));
    return std::nullopt;
}

// After a failed proof, rolled back: the values as they were tell a value that blocked the change
// (named, exit 1) from a rewrite that went wrong (the proof's own error).
Error why_not_proven(store::KeyStore& store, const OpenDbKey& current, const CensusOptions& options, Error proof) {
    try {
        Census census = take_census(store, current.plaintext, current.key_id, options);
        if (census.blocking() > 0) return blocking_values_error(blocking_of(census), census.blocking(), store.describe());
    } catch (const Error&) {
    }
    return proof;
}

std::string mebibytes(uint64_t bytes) { return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1 << 20)); }

// A rewrite that dies of a full disk at 90 % has held the database for nothing: refuse before
// anything is written when the journal would not fit.
void require_room_to_rewrite(store::KeyStore& store) {
    auto room = store.room_to_rewrite();
    if (!room || room->available >= room->needed) return;
    throw Error(ExitCode::database,
                fmt::format("not enough free disk for the journal of {}: {} has {} free, rewriting every value needs "
                            "about {}; nothing changed",
                            store.describe(), room->directory, mebibytes(room->available), mebibytes(room->needed)),
                fmt::format("free at least {} in {}, then run the command again", mebibytes(room->needed - room->available),
                            room->directory));
}

Census census_under(store::KeyStore& store, const OpenDbKey& current) {
    return take_census(store, current.plaintext, current.key_id, census_options(detect_release(store)));
}

RekeyPlan plan_of(const Census& census) {
    RekeyPlan plan;
    plan.counted = true;
    plan.values_by_column = sealed_by_column(census);
    plan.values = census.sealed();
    plan.blocking = blocking_of(census);
    plan.blocking_count = census.blocking();
    return plan;
}

}  // namespace

ValueTransform rekey_id(const seal::KeyId& from, const seal::KeyId& to) {
    // One rewriter for the whole rewrite (it keeps its buffer); shared because std::function
    // copies its target.
    auto rewriter = std::make_shared<seal::KeyIdRewriter>(from, to);
    return [rewriter](std::string_view text) { return rewriter->rewrite(text); };
}

ValueTransform reseal(const OpenDbKey& from, const SecretBytes& to_key, const seal::KeyId& to_id,
                      const std::string& root_key_id) {
    // One opener and one sealer for the whole rewrite (each keyed once, with its buffers); shared because
    // std::function copies its target.
    auto opener = std::make_shared<seal::Opener>(from.plaintext, from.key_id);
    auto sealer = std::make_shared<seal::Sealer>(to_key, to_id, root_key_id);
    return [opener, sealer](std::string_view text) -> std::optional<std::string> {
        if (opener->open(text) != seal::Failure::none) return std::nullopt;
        return sealer->seal(opener->plaintext());
    };
}

KeyChange begin_key_change(store::KeyStore& store, const store::KeyRow& expected) {
    KeyChange change{store.begin_exclusive()};
    auto row = change.tx->live_key(db_key_name);
    if (!row || row->id != expected.id || row->encrypted != expected.encrypted)
        fail(ExitCode::refused, "the dbkey row in {} changed while infra-keys worked; nothing written, run the command again",
             store.describe());
    return change;
}

RekeyCounts commit_rewrap(store::KeyStore& store, const OpenDbKey& current, const NewWrapping& next,
                          const Unwrapper& unwrap_next, const std::string& failpoint_prefix) {
    KeyChange change = begin_key_change(store, current.row);
    return commit_rewrap(change, store, current, next, unwrap_next, failpoint_prefix);
}

RekeyCounts commit_rewrap(KeyChange& change, store::KeyStore& store, const OpenDbKey& current, const NewWrapping& next,
                          const Unwrapper& unwrap_next, const std::string& failpoint_prefix) {
    KeyChangeTarget target{next, current.plaintext, rekey_id(current.key_id, seal::key_id_of(next.wrapped)), unwrap_next, {}};
    return commit_key_change(change, store, current, target, failpoint_prefix);
}

RekeyCounts commit_key_change(KeyChange& change, store::KeyStore& store, const OpenDbKey& current,
                              const KeyChangeTarget& target, const std::string& failpoint_prefix) {
    store::Transaction* tx = change.tx.get();
    auto row = tx->live_key(db_key_name);
    // begin_key_change checked the row under the lock, which keeps it so: only a caller's mix-up
    // of rows gets here.
    if (!row || row->id != current.row.id || row->encrypted != current.row.encrypted)
        fail(ExitCode::internal, "the dbkey row in {} is not the one this key change began with", store.describe());

    const NewWrapping& next = target.next;
    store::KeyRow updated = *row;
    updated.encrypted = next.wrapped;
    updated.algorithm = next.algorithm;
    updated.root_key_id = next.root_key_id;
    updated.updated_at = store::now_timestamp();
    tx->update_key(updated);

    // A re-wrap that keeps the wrapped bytes' key id leaves every value as it is; the census under
    // the new row still proves every one opens.
    seal::KeyId new_id = seal::key_id_of(next.wrapped);
    const bool rewrites = new_id != current.key_id || target.db_key != current.plaintext;
    RekeyCounts counts = rewrites ? carry_over(*tx, store, target.transform) : RekeyCounts{};
    CensusOptions options = census_options(detect_release(store));
    Census after = take_census(store, target.db_key, new_id, options);
    if (auto failure = disproof(rewrites ? &counts : nullptr, after, store)) {
        change.tx.reset();  // rolled back before anything is read again
        throw why_not_proven(store, current, options, std::move(*failure));
    }

    // Proof before commit: the row as now stored opens with the new root key to the new db key.
    auto stored = tx->live_key(db_key_name);
    if (!stored || stored->encrypted != next.wrapped || target.unwrap_next(stored->encrypted) != target.db_key)
        fail(ExitCode::database, "the new dbkey row in {} does not unwrap to the db key; nothing committed", store.describe());
    if (target.before_commit) target.before_commit();

    failpoint(failpoint_prefix + "-before-commit");
    tx->commit();
    failpoint(failpoint_prefix + "-after-commit");
    return counts;
}

RekeyPlan plan_rekey(store::KeyStore& store, const OpenDbKey& current) {
    RekeyPlan plan = plan_of(census_under(store, current));
    if (plan.values > 0) require_room_to_rewrite(store);
    return plan;
}

RekeyPlan plan_rewrite(store::KeyStore& store, const OpenDbKey& current, bool census_first) {
    // A real run without the census cannot tell whether any value will be rewritten, so the
    // journal's room is checked either way, and a dry run checks it as the real run does.
    RekeyPlan plan = census_first ? plan_of(census_under(store, current)) : RekeyPlan{};
    require_room_to_rewrite(store);
    refuse_blocking_values(plan, store.describe());
    return plan;
}

void refuse_blocking_values(const RekeyPlan& plan, const std::string& database) {
    if (!plan.blocking.empty()) throw blocking_values_error(plan.blocking, plan.blocking_count, database);
}

}  // namespace ik::ops

