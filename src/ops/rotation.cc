#include "ops/rotation.h"

#include "crypto/random.h"
#include "crypto/seal.h"
#include "ops/db_key.h"
#include "ops/guard.h"
#include "ops/key_slots.h"
#include "ops/pipeline.h"
#include "ops/rekey.h"
#include "ops/release.h"
#include "ops/verify.h"
#include "util/error.h"
#include "util/failpoint.h"

// The order of a native rotation (K = the configured root key's slot, see key_slots.h):
//   plan  lock the key directory, check the server, take the database's exclusive lock
//         (begin_key_change, held until 3 commits), check the journal's free disk; the census of
//         the values rides on 3's rewrite (a dry run takes it here, to predict refusals)
//   1. create K.new with a new key (a file: temp, fsync, rename, fsync dir)   failpoint rotate-after-write-new-key
//   2. keep the old key as K.<stamp>.retired                                  failpoint rotate-after-retain
//   3. one transaction: dbkey row re-wrapped by K.new, every value re-keyed  failpoints rotate-before/after-commit
//   4. move K.new over K (rename(2), or one conditional Secret write)        failpoint rotate-after-install
// Before 3 commits the row opens with K; after, with K.new until 4, then with K. A failure before
// 3 commits (a value that blocks the re-key included) removes what 1 and 2 wrote; a kill leaves
// K.new, which every command detects, and --resume finishes from whichever of the two opens the
// row (--abort drops it if K still does).
//
// Providers that rotate in place keep no key material here, so they have nothing to stage: the
// row is re-wrapped inside the provider and committed by step 3 alone; until it commits, the old
// wrapping still opens (Vault keeps old key versions, KMS keeps the old key).

namespace ik::ops {
namespace {

// Everything a key change writes beside the key: a temp file, the new key and a retained copy.
constexpr size_t staged_key_bytes = 3 * seal::key_size;

bool opens(providers::RootKeyProvider& provider, const store::KeyRow& row) {
    return provider.try_unwrap(row.encrypted).has_value();
}

// Plan: the database's exclusive lock (a second writer, or a database that cannot take a write
// transaction, refuses here with nothing written), then under it the plan of the rewrite
// (plan_rewrite: with `census_first`, the census and what would block it).
KeyChange plan_key_change(Installation& inst, const OpenDbKey& current, bool census_first, RotateResult& result) {
    KeyChange change = begin_key_change(inst.store(), current.row);
    RekeyPlan plan = plan_rewrite(inst.store(), current, census_first);
    if (!plan.counted) {
        result.lines.push_back(fmt::format("re-wrap dbkey row {} in {} in one transaction, re-keying every value "
                                           "sealed by it", current.row.id, inst.store().describe()));
        return change;
    }
    result.values = plan.values;
    result.lines.push_back(fmt::format("re-wrap dbkey row {} in {} in one transaction, re-keying {} values:",
                                       current.row.id, inst.store().describe(), plan.values));
    append_counts(plan.values_by_column, result.lines);
    return change;
}

RotateResult new_result(const RotateOptions& options) {
    RotateResult result;
    result.lines.on_line = options.on_step;
    return result;
}

void sweep_temp_files(KeySlots& slots, RotateResult& result) {
    for (const auto& stale : slots.remove_stale_temp_files())
        result.lines.push_back(fmt::format("removed the stale temp file {}", stale));
}

// --- native: files or Kubernetes, through the same slots ---------------------------------------

// Step 2: the old key must survive step 4. Idempotent: a retained copy of K counts.
void retain_old_key(KeySlots& slots, StagedKeys& staged, RotateResult& result) {
    auto current = slots.read(slots.key());
    if (!current) {
        result.lines.push_back(fmt::format("no previous root key at {} to retain", slots.describe(slots.key())));
        return;
    }
    for (const auto& retired : slots.retained())
        if (slots.read(retired) == current) {
            result.lines.push_back(fmt::format("previous root key already retained as {}", slots.describe(retired)));
            return;
        }
    std::string retired = slots.retired(utc_stamp());
    staged.create(retired, *current);
    result.lines.push_back(fmt::format("previous root key retained as {}", slots.describe(retired)));
    failpoint("rotate-after-retain");
}

// The dbkey row as a commit of `next` will leave it, with its db key: what a backup of it holds.
OpenDbKey once_committed(const OpenDbKey& current, const NewWrapping& next) {
    store::KeyRow row = current.row;
    row.encrypted = next.wrapped;
    row.algorithm = next.algorithm;
    row.root_key_id = next.root_key_id;
    row.updated_at = store::now_timestamp();
    return {row, current.plaintext, seal::key_id_of(next.wrapped)};
}

// --backup FILE, between stage and commit: a failure here is a failure before the commit.
void back_up_before_commit(KeyChangeBackup* backup, const OpenDbKey& next, const std::optional<SecretBytes>& root_key,
                           RotateResult& result) {
    if (!backup) return;
    for (auto& line : backup->write(next, root_key)) result.lines.push_back(std::move(line));
}

// Plan of --backup FILE: refused before anything is written, dry runs included.
std::optional<KeyChangeBackup> plan_backup(Installation& inst, const RotateOptions& options, RotateResult& result) {
    std::optional<KeyChangeBackup> backup;
    if (!options.backup) return backup;
    backup.emplace(inst, *options.backup);
    if (options.dry_run)
        result.lines.push_back(fmt::format("write a backup of the new keys to {} and re-open it before the commit",
                                           options.backup->path));
    return backup;
}

KeyChangeBackup* if_any(std::optional<KeyChangeBackup>& backup) { return backup ? &*backup : nullptr; }

// Step 3, from a new key already durable in K.new and a row that opens with K.
void commit_new_wrapping(Installation& inst, KeySlots& slots, KeyChange& change, const OpenDbKey& current,
                         KeyChangeBackup* backup, RotateResult& result) {
    auto new_key = slots.provider(slots.next());
    NewWrapping next{new_key->wrap(current.plaintext), new_key->algorithm(), current.row.root_key_id};
    back_up_before_commit(backup, once_committed(current, next), slots.read(slots.next()), result);
    RekeyCounts counts = commit_rewrap(change, inst.store(), current, next,
                                       [&](ByteView w) { return new_key->unwrap(w); }, "rotate");
    result.values = counts.values;
    result.lines.push_back(fmt::format("dbkey row {} re-wrapped by the new root key; {} encrypted values re-keyed{}",
                                       current.row.id, counts.values, counts.values ? ":" : ""));
    append_counts(counts.values_by_column, result.lines);
}

// The error for a failure during stage or commit. Whether the commit happened is read back, not
// guessed: the row that opens with K.new means it did (then K.new must stay for --resume).
Error after_failure(Installation& inst, KeySlots& slots, StagedKeys& staged, KeyChange& change,
                    const KeyChangeBackup* backup, const Error& cause) {
    change.tx.reset();  // roll back, and let go of the database lock before reading the row again
    std::optional<bool> committed;
    try {
        auto row = inst.store().live_key(db_key_name);
        auto next = slots.read(slots.next());
        committed = row && next && next->size() == seal::key_size && opens(*slots.provider(slots.next()), *row);
    } catch (const Error&) {
    }
    if (committed == false) return backup ? backup->undo(staged.undo(cause), false) : staged.undo(cause);
    staged.keep();
    Error kept(cause.code(),
                 fmt::format("{}; {}", cause.what(),
                             committed ? "the new wrapping had committed" : "cannot tell whether the new wrapping committed"),
                 "run `infra-keys rotate-root --resume` to finish (or `--abort` if it did not commit)");
    return backup ? backup->undo(kept, true) : kept;
}

// Runs stage and commit; whatever stops them is reported by after_failure.
template <typename StageAndCommit>
void staged(Installation& inst, KeySlots& slots, StagedKeys& keys, KeyChange& change, const KeyChangeBackup* backup,
            StageAndCommit&& run) {
    try {
        run();
    } catch (const Error& e) {
        throw after_failure(inst, slots, keys, change, backup, e);
    } catch (const std::exception& e) {
        throw after_failure(inst, slots, keys, change, backup,
                            Error(ExitCode::internal, fmt::format("internal error: {}", e.what())));
    }
}

// Step 4.
void install_new_key(KeySlots& slots, RotateResult& result) {
    slots.install_next();
    failpoint("rotate-after-install");
    result.lines.push_back(fmt::format("new root key installed at {}", slots.describe(slots.key())));
}

// --resume of a rotation whose commit had not happened: the new key it wrote is committed now.
void finish_uncommitted(Installation& inst, KeySlots& slots, const store::KeyRow& row, RotateResult& result) {
    OpenDbKey current = open_db_key(*slots.provider(slots.key()), row);
    KeyChange change = plan_key_change(inst, current, /*census_first=*/false, result);
    StagedKeys keys(slots);
    staged(inst, slots, keys, change, nullptr, [&] {
        retain_old_key(slots, keys, result);
        commit_new_wrapping(inst, slots, change, current, nullptr, result);
    });
}

// Where --resume and --abort start: stale temp files swept, then the new key a rotation left, if any.
std::optional<SecretBytes> left_behind(KeySlots& slots, RotateResult& result, const char* what) {
    sweep_temp_files(slots, result);
    auto next = slots.read(slots.next());
    if (!next) {
        result.nothing_to_do = true;
        result.lines.push_back(fmt::format("rotate-root: nothing to {}: no interrupted rotation found", what));
    }
    return next;
}

RotateResult resume_native(Installation& inst, KeySlots& slots, const store::KeyRow& row, const RotateOptions& options) {
    RotateResult result = new_result(options);
    auto next = left_behind(slots, result, "resume");
    if (!next) return result;
    if (next->size() != seal::key_size)
        throw Error(ExitCode::interrupted,
                    fmt::format("{} is not a root key ({} bytes): nothing to resume", slots.describe(slots.next()),
                                next->size()),
                    "remove it with `infra-keys rotate-root --abort`");
    // A storage without an atomic move may have died between copying K.new to K and deleting it.
    if (slots.read(slots.key()) == next) {
        slots.remove(slots.next());
        result.lines.push_back(fmt::format("the interrupted rotation had installed the new key; removed {}",
                                           slots.describe(slots.next())));
        return result;
    }
    if (opens(*slots.provider(slots.next()), row)) {
        result.lines.push_back("the interrupted rotation had committed; finishing it");
        StagedKeys staged(slots);
        retain_old_key(slots, staged, result);
        staged.keep();
    } else if (opens(*slots.provider(slots.key()), row)) {
        result.lines.push_back("the interrupted rotation had not committed; completing it with the new key it wrote");
        finish_uncommitted(inst, slots, row, result);
    } else {
        fail(ExitCode::wrong_key, "neither {} nor {} unwraps dbkey row {}; not touching anything",
             slots.describe(slots.key()), slots.describe(slots.next()), row.id);
    }
    install_new_key(slots, result);
    result.kept_old_key = true;
    return result;
}

// --abort: the rotation never committed, so its new key and its copy of the old one go.
RotateResult abort_native(Installation& inst, KeySlots& slots, const store::KeyRow& row, const RotateOptions& options) {
    RotateResult result = new_result(options);
    auto next = left_behind(slots, result, "abort");
    if (!next) return result;
    if (next->size() == seal::key_size && opens(*slots.provider(slots.next()), row))
        throw Error(ExitCode::refused,
                    fmt::format("the interrupted rotation committed: dbkey row {} in {} opens only with {}; it cannot be "
                                "dropped", row.id, inst.store().describe(), slots.describe(slots.next())),
                    "run `infra-keys rotate-root --resume` to finish it");
    if (options.dry_run) {
        result.lines.push_back(fmt::format("remove {}", slots.describe(slots.next())));
        return result;
    }
    auto current = slots.read(slots.key());
    for (const auto& retired : slots.retained())
        if (current && slots.read(retired) == current) {
            slots.remove(retired);
            result.lines.push_back(fmt::format("removed {}, the copy the rotation kept of the current key",
                                               slots.describe(retired)));
        }
    slots.remove(slots.next());
    result.lines.push_back(fmt::format("removed {}; the rotation that never committed is dropped",
                                       slots.describe(slots.next())));
    return result;
}

RotateResult rotate_native(Installation& inst, KeySlots& slots, const RotateOptions& options) {
    if (options.to_key_id) fail(ExitCode::usage, "--to-key-id applies to the awskms provider only");
    ChangeLock lock = lock_and_check(inst, {options.server_stopped, options.resume || options.abort, staged_key_bytes});
    store::KeyRow row = require_db_key_row(inst.store());
    if (options.resume) return resume_native(inst, slots, row, options);
    if (options.abort) return abort_native(inst, slots, row, options);

    RotateResult result = new_result(options);
    OpenDbKey current = open_db_key(*inst.provider, row);  // the configured key must open it before we start
    std::optional<KeyChangeBackup> backup = plan_backup(inst, options, result);
    if (options.dry_run) {
        result.lines.push_back(fmt::format("write a new 32-byte root key to {}", slots.describe(slots.next())));
        result.lines.push_back(fmt::format("retain the current root key as {}", slots.describe(slots.retired("<time>"))));
        plan_key_change(inst, current, /*census_first=*/true, result);
        result.lines.push_back(fmt::format("move {} to {}", slots.describe(slots.next()), slots.describe(slots.key())));
        return result;
    }
    // What is staged below is undone by any failure before the commit: the census can ride on the rewrite.
    KeyChange change = plan_key_change(inst, current, /*census_first=*/false, result);
    StagedKeys keys(slots);
    staged(inst, slots, keys, change, if_any(backup), [&] {
        keys.create(slots.next(), crypto::random_key());
        failpoint("rotate-after-write-new-key");
        result.lines.push_back(fmt::format("new root key written to {}", slots.describe(slots.next())));
        retain_old_key(slots, keys, result);
        commit_new_wrapping(inst, slots, change, current, if_any(backup), result);
    });
    keys.keep();
    install_new_key(slots, result);
    result.kept_old_key = true;
    return result;
}

// --- providers that rotate in place ---------------------------------------------------------

RotateResult nothing_to_resume(const std::string& kind, const RotateOptions& options) {
    RotateResult result = new_result(options);
    result.nothing_to_do = true;
    result.lines.push_back(fmt::format("rotate-root: nothing to {}: a {} rotation commits in one transaction, "
                                       "so none can be left half-way",
                                       options.abort ? "abort" : "resume", kind));
    return result;
}

// Plan: the key the row moves to must wrap and unwrap (a policy may allow one and not the other),
// else the proof before commit would fail only after the provider had changed its key.
void prove_round_trip(providers::RootKeyProvider& target, RotateResult& result) {
    providers::DbKey probe = target.generate_db_key();
    auto opened = target.try_unwrap(probe.wrapped);
    if (!opened || *opened != probe.plaintext)
        throw Error(ExitCode::provider, fmt::format("{} does not unwrap a key it wrapped itself", target.describe()),
                    "check the key's policy: the rotation needs both encrypt and decrypt on it");
    result.lines.push_back(fmt::format("{} wraps and unwraps a test key", target.describe()));
}

RotateResult rotate_in_provider(Installation& inst, providers::InPlaceRotation& rotation, const RotateOptions& options) {
    if (options.resume || options.abort) return nothing_to_resume(inst.provider->kind(), options);
    ChangeLock lock = lock_and_check(inst, {options.server_stopped, false, 0});
    store::KeyRow row = require_db_key_row(inst.store());
    OpenDbKey current = open_db_key(*inst.provider, row);
    RotateResult result = new_result(options);
    for (auto& line : rotation.plan()) result.lines.push_back(std::move(line));
    prove_round_trip(rotation.target(), result);
    std::optional<KeyChangeBackup> backup = plan_backup(inst, options, result);
    // The provider's new key version cannot be taken back: whatever would refuse must refuse before it.
    KeyChange change = plan_key_change(inst, current, /*census_first=*/true, result);
    if (options.dry_run) return result;

    providers::Rewrapped rewrapped = rotation.rewrap(row.encrypted);
    for (auto& line : rewrapped.lines) result.lines.push_back(std::move(line));
    NewWrapping next{rewrapped.wrapped, rewrapped.algorithm, rewrapped.root_key_id};
    // The old key version still opens the row until the commit: the provider has nothing to undo.
    RekeyCounts counts;
    try {
        back_up_before_commit(if_any(backup), once_committed(current, next), std::nullopt, result);
        counts = commit_rewrap(change, inst.store(), current, next,
                               [&](ByteView w) { return rotation.target().unwrap(w); }, "rotate");
    } catch (const Error& e) {
        change.tx.reset();
        if (backup) throw backup->undo(e, committed_since(inst, row));
        throw;
    }
    result.values = counts.values;
    result.lines.push_back(fmt::format("dbkey row {} committed; {} encrypted values re-keyed", row.id, counts.values));
    for (auto& line : rotation.after_commit()) result.lines.push_back(std::move(line));
    return result;
}

}  // namespace

RotateResult rotate_root(Installation& inst, const RotateOptions& options) {
    if (options.resume && options.dry_run)
        fail(ExitCode::usage, "rotate-root: --resume cannot be combined with --dry-run");
    if (options.resume && options.abort) fail(ExitCode::usage, "rotate-root: --resume and --abort exclude each other");
    refuse_what_the_release_cannot_run(inst);
    if (auto slots = key_slots(inst)) return rotate_native(inst, *slots, options);
    if (auto rotation = inst.provider->rotation(options.to_key_id)) return rotate_in_provider(inst, *rotation, options);
    fail(ExitCode::usage, "rotate-root does not support the {} provider", inst.provider->kind());
}

RotateResult retire_old_keys(Installation& inst, bool dry_run, const std::function<void(const std::string&)>& on_step) {
    auto slots = key_slots(inst);
    if (!slots)
        fail(ExitCode::usage, "--retire-old applies to native root keys only; the {} provider keeps its own old key "
             "versions", inst.provider->kind());
    // Deleting retained keys changes no database: the running server does not matter here.
    ChangeLock lock = lock_and_check(inst, {/*server_stopped=*/true, false, 0});
    RotateResult result;
    result.lines.on_line = on_step;
    auto retained = slots->retained();
    if (retained.empty()) {
        result.nothing_to_do = true;
        result.lines.push_back("rotate-root: no retained root keys to retire");
        return result;
    }
    VerifyReport report = verify(inst, VerifyLevel::full);
    if (report.exit_code() != ExitCode::ok)
        throw Error(ExitCode::refused,
                    "not retiring old root keys: `verify --level full` does not pass with the configured root key",
                    "run `infra-keys verify --level full` to see why");
    for (const auto& slot : retained) {
        if (!dry_run) slots->remove(slot);
        result.lines.push_back(fmt::format("{}retired {}", dry_run ? "would have " : "", slots->describe(slot)));
    }
    return result;
}

}  // namespace ik::ops
