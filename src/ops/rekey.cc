#include "ops/rekey.h"

#include <algorithm>
#include <memory>

#include "ops/release.h"
#include "util/error.h"
#include "util/failpoint.h"

namespace ik::ops {
namespace {

constexpr size_t problems_in_message = 20;

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

// ik::Error(problems) naming the values a re-key cannot carry over: re-keying them would hide the
// damage, and leaving them would leave them behind.
void refuse_blocking(const Census& census, store::KeyStore& store) {
    auto blocking = blocking_of(census);
    if (census.blocking() == 0) return;
    std::string named;
    for (size_t i = 0; i < blocking.size() && i < problems_in_message; ++i)
        named += fmt::format("{}{}.{} row {} ({})", i ? "; " : "", blocking[i].table, blocking[i].column,
                             blocking[i].row, blocking[i].reason);
    uint64_t count = census.blocking();
    if (count > std::min<uint64_t>(blocking.size(), problems_in_message))
        named += fmt::format("; and {} more", count - std::min<uint64_t>(blocking.size(), problems_in_message));
    throw Error(ExitCode::problems,
                fmt::format("{} value{} in {} would not carry over to the new wrapping: {}; nothing changed", count,
                            count == 1 ? "" : "s", store.describe(), named),
                "run `infra-keys verify --level full` to see each one");
}

// Carries every sealed value of one table over with `transform`, each row in one UPDATE. The
// census before proved each value it must touch opens; the census after proves they open under
// the new row.
std::vector<uint64_t> carry_over_table(store::Transaction& tx, const std::vector<store::EncryptedColumn>& columns,
                                       const ValueTransform& transform) {
    return tx.rewrite_values(columns, transform);
}

// The proof before commit: the same values, all opening under the new key id, none left behind.
void prove_rekeyed(const Census& before, const Census& after, store::KeyStore& store) {
    auto blocking = blocking_of(after);
    if (!blocking.empty())
        fail(ExitCode::database, "after re-keying, {}.{} row {} in {} does not open under the new dbkey row ({}); "
             "nothing committed", blocking.front().table, blocking.front().column, blocking.front().row,
             store.describe(), blocking.front().reason);
    if (sealed_by_column(before) != sealed_by_column(after))
        fail(ExitCode::database, "after re-keying, {} holds {} sealed values where it held {} before; nothing committed",
             store.describe(), after.sealed(), before.sealed());
}

// The census's columns holding sealed values, grouped by table (a census lists them table by table).
std::vector<std::vector<const ColumnCensus*>> sealed_tables(const Census& census) {
    std::vector<std::vector<const ColumnCensus*>> tables;
    for (const auto& c : census.columns) {
        if (c.sealed == 0) continue;
        if (tables.empty() || tables.back().front()->column.table != c.column.table) tables.emplace_back();
        tables.back().push_back(&c);
    }
    return tables;
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

RekeyPlan plan_of(const Census& census, store::KeyStore& store) {
    RekeyPlan plan;
    plan.values_by_column = sealed_by_column(census);
    plan.values = census.sealed();
    plan.blocking = blocking_of(census);
    if (plan.values > 0) require_room_to_rewrite(store);
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
    KeyChange change{store.encrypted_columns(), store.begin_exclusive(), std::nullopt};
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

    // The census is taken under the lock, inside the transaction: what it finds is what is there.
    // A census the plan took under this same lock is that census already.
    CensusOptions options = census_options(detect_release(store));
    Census before = change.census && change.census->key_id == current.key_id
                        ? std::move(change.census->census)
                        : take_census(store, current.plaintext, current.key_id, options);
    change.census.reset();
    refuse_blocking(before, store);

    const NewWrapping& next = target.next;
    store::KeyRow updated = *row;
    updated.encrypted = next.wrapped;
    updated.algorithm = next.algorithm;
    updated.root_key_id = next.root_key_id;
    updated.updated_at = store::now_timestamp();
    tx->update_key(updated);

    RekeyCounts counts;
    seal::KeyId new_id = seal::key_id_of(next.wrapped);
    // A re-wrap that keeps the wrapped bytes' key id leaves every value as it is.
    if (new_id != current.key_id || target.db_key != current.plaintext) {
        for (const auto& table : sealed_tables(before)) {
            std::vector<store::EncryptedColumn> columns;
            for (const auto* c : table) columns.push_back(c->column);
            auto rewritten = carry_over_table(*tx, columns, target.transform);
            for (size_t i = 0; i < table.size(); ++i) {
                if (rewritten[i] != table[i]->sealed)
                    fail(ExitCode::database, "{} changed while infra-keys re-keyed it ({} values rewritten, {} counted); "
                         "nothing committed", table[i]->column.name(), rewritten[i], table[i]->sealed);
                counts.values += rewritten[i];
            }
        }
        prove_rekeyed(before, take_census(store, target.db_key, new_id, options), store);
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
    return plan_of(take_census(store, current.plaintext, current.key_id, census_options(detect_release(store))), store);
}

RekeyPlan plan_rekey(KeyChange& change, store::KeyStore& store, const OpenDbKey& current) {
    change.census.reset();
    Census census = take_census(store, current.plaintext, current.key_id, census_options(detect_release(store)));
    RekeyPlan plan = plan_of(census, store);
    change.census = LockedCensus{current.key_id, std::move(census)};
    return plan;
}

std::vector<std::pair<std::string, uint64_t>> values_to_rekey(store::KeyStore& store) {
    store::KeyRow row = require_db_key_row(store);
    CensusOptions options = census_options(detect_release(store));
    options.open_values = false;
    return sealed_by_column(take_census(store, {}, seal::key_id_of(row.encrypted), options));
}

}  // namespace ik::ops

