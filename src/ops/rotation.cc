#include "ops/rotation.h"

#include "crypto/random.h"
#include "ops/db_key.h"
#include "ops/guard.h"
#include "ops/key_slots.h"
#include "ops/rekey.h"
#include "ops/release.h"
#include "ops/verify.h"
#include "providers/awskms.h"
#include "providers/native.h"
#include "providers/vault.h"
#include "util/error.h"
#include "util/failpoint.h"
#include "util/lock_file.h"

// The order of a native rotation (K = the configured root key's slot, see key_slots.h):
//   0. take the database's exclusive lock (begin_key_change), held until 3 commits
//   1. create K.new with a new key (a file: temp, fsync, rename, fsync dir)   failpoint rotate-after-write-new-key
//   2. keep the old key as K.<stamp>.retired                                  failpoint rotate-after-retain
//   3. one transaction: dbkey row re-wrapped by K.new, every value re-keyed  failpoints rotate-before/after-commit
//   4. move K.new over K (rename(2), or one conditional Secret write)        failpoint rotate-after-install
// Before 3 commits the row opens with K; after, with K.new until 4, then with K. A leftover K.new
// is what every command detects, and --resume finishes from whichever of the two opens the row.
//
// Remote providers keep no key material here, so they have no intermediate state to resume: the
// row is re-wrapped inside the provider and committed by step 3 alone; until it commits, the old
// wrapping still opens (Vault keeps old key versions, KMS keeps the old key).

namespace ik::ops {
namespace {

bool opens(providers::RootKeyProvider& provider, const store::KeyRow& row) {
    try {
        provider.unwrap(row.encrypted);
        return true;
    } catch (const Error& e) {
        if (e.code() == ExitCode::wrong_key) return false;
        throw;
    }
}

void add_rekey_plan(Installation& inst, const store::KeyRow& row, RotateResult& result) {
    result.lines.push_back(fmt::format("re-wrap dbkey row {} in {} in one transaction, re-keying:", row.id,
                                       inst.store().describe()));
    for (const auto& [column, count] : values_to_rekey(inst.store()))
        result.lines.push_back(fmt::format("  {} values in {}", count, column));
}

// --- native: files or Kubernetes, through the same slots ---------------------------------------

// Step 2: the old key must survive step 4. Idempotent: a retained copy of K counts.
void retain_old_key(KeySlots& slots, RotateResult& result) {
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
    slots.create(retired, *current);
    result.lines.push_back(fmt::format("previous root key retained as {}", slots.describe(retired)));
    failpoint("rotate-after-retain");
}

// Steps 2–3, from a new key already durable in K.new and a row that opens with K.
void finish_from_old_wrapping(Installation& inst, KeySlots& slots, KeyChange& change, const store::KeyRow& row,
                              RotateResult& result) {
    auto old_key = slots.provider(slots.key());
    auto new_key = slots.provider(slots.next());
    OpenDbKey current = open_db_key(*old_key, row);
    retain_old_key(slots, result);
    NewWrapping next{new_key->wrap(current.plaintext), new_key->algorithm(), row.root_key_id};
    RekeyCounts counts = commit_rewrap(change, inst.store(), current, next,
                                       [&](ByteView w) { return new_key->unwrap(w); }, "rotate");
    result.lines.push_back(fmt::format("dbkey row {} re-wrapped by the new root key; {} encrypted values re-keyed", row.id,
                                       counts.values));
}

// Step 4.
void install_new_key(KeySlots& slots, RotateResult& result) {
    slots.install_next();
    failpoint("rotate-after-install");
    result.lines.push_back(fmt::format("new root key installed at {}", slots.describe(slots.key())));
}

RotateResult resume_native(Installation& inst, KeySlots& slots, KeyChange& change, const store::KeyRow& row) {
    RotateResult result;
    auto next = slots.read(slots.next());
    if (!next) {
        result.nothing_to_do = true;
        result.lines.push_back("rotate-root: nothing to resume: no interrupted rotation found");
        return result;
    }
    // A storage without an atomic move may have died between copying K.new to K and deleting it.
    if (slots.read(slots.key()) == next) {
        slots.remove(slots.next());
        result.lines.push_back(fmt::format("the interrupted rotation had installed the new key; removed {}",
                                           slots.describe(slots.next())));
        return result;
    }
    if (opens(*slots.provider(slots.next()), row)) {
        result.lines.push_back("the interrupted rotation had committed; finishing it");
        retain_old_key(slots, result);
    } else if (opens(*slots.provider(slots.key()), row)) {
        result.lines.push_back("the interrupted rotation had not committed; completing it with the new key it wrote");
        finish_from_old_wrapping(inst, slots, change, row, result);
    } else {
        fail(ExitCode::wrong_key, "neither {} nor {} unwraps dbkey row {}; not touching anything",
             slots.describe(slots.key()), slots.describe(slots.next()), row.id);
    }
    install_new_key(slots, result);
    result.kept_old_key = true;
    return result;
}

RotateResult rotate_native(Installation& inst, KeySlots& slots, const RotateOptions& options) {
    if (options.to_key_id) fail(ExitCode::usage, "--to-key-id applies to the awskms provider only");
    std::optional<LockFile> lock;
    if (auto dir = slots.lock_directory()) lock.emplace(*dir);
    store::KeyRow row = require_db_key_row(inst.store());
    // The database lock is taken before anything is checked or written: the flock guards only key
    // files, this guards the installation wherever its keys are (Kubernetes, or another
    // operator's copy of the key file), so a second rotation stops at once with nothing written.
    std::optional<KeyChange> change;
    if (!options.dry_run) {
        require_server_stopped(inst, options.server_stopped);
        change.emplace(begin_key_change(inst.store(), row));
        slots.remove_stale_temp_files();
    }
    if (options.resume) return resume_native(inst, slots, *change, row);

    refuse_if_rotation_interrupted(inst);
    open_db_key(*inst.provider, row);  // the configured key must open it before we start

    RotateResult result;
    if (options.dry_run) {
        result.lines.push_back(fmt::format("write a new 32-byte root key to {}", slots.describe(slots.next())));
        result.lines.push_back(fmt::format("retain the current root key as {}", slots.describe(slots.retired("<time>"))));
        add_rekey_plan(inst, row, result);
        result.lines.push_back(fmt::format("move {} to {}", slots.describe(slots.next()), slots.describe(slots.key())));
        return result;
    }
    slots.create(slots.next(), crypto::random_key());
    failpoint("rotate-after-write-new-key");
    result.lines.push_back(fmt::format("new root key written to {}", slots.describe(slots.next())));
    finish_from_old_wrapping(inst, slots, *change, row, result);
    install_new_key(slots, result);
    result.kept_old_key = true;
    return result;
}

// --- remote providers -----------------------------------------------------------------------

RotateResult nothing_to_resume(const std::string& kind) {
    RotateResult result;
    result.nothing_to_do = true;
    result.lines.push_back(fmt::format("rotate-root: nothing to resume: a {} rotation commits in one transaction, "
                                       "so none can be left half-way",
                                       kind));
    return result;
}

// Vault: a new transit key version, then Vault's own rewrap of the row to it; the db key is
// decrypted only to prove each re-keyed value still opens (commit_rewrap).
RotateResult rotate_vault(Installation& inst, providers::VaultProvider& vault, const RotateOptions& options) {
    if (options.to_key_id) fail(ExitCode::usage, "--to-key-id applies to the awskms provider only");
    if (options.resume) return nothing_to_resume("vault");
    store::KeyRow row = require_db_key_row(inst.store());
    OpenDbKey current = open_db_key(vault, row);
    RotateResult result;
    if (options.dry_run) {
        auto info = vault.read_key();
        result.lines.push_back(fmt::format("rotate {} to version {}", vault.describe(), info.latest_version + 1));
        result.lines.push_back("re-wrap the dbkey row to that version inside Vault (rewrap)");
        add_rekey_plan(inst, row, result);
        return result;
    }
    require_server_stopped(inst, options.server_stopped);
    KeyChange change = begin_key_change(inst.store(), row);  // before Vault adds a key version
    vault.rotate_key();
    auto info = vault.read_key();
    result.lines.push_back(fmt::format("{} rotated to version {}", vault.describe(), info.latest_version));
    failpoint("rotate-after-provider-rotate");
    NewWrapping next{vault.rewrap(row.encrypted), vault.algorithm(), vault.root_key_id()};
    RekeyCounts counts =
        commit_rewrap(change, inst.store(), current, next, [&](ByteView w) { return vault.unwrap(w); }, "rotate");
    result.lines.push_back(fmt::format("dbkey row {} re-wrapped by key version {}; {} encrypted values re-keyed", row.id,
                                       info.latest_version, counts.values));
    result.lines.push_back(fmt::format("older versions still decrypt until min_decryption_version (now {}) is raised "
                                       "in Vault",
                                       info.min_decryption_version));
    return result;
}

// AWS KMS: ReEncrypt inside KMS, to the same key (which picks up KMS's own key rotation) or to
// --to-key-id; the server config must then name the new key, which we cannot edit for it.
RotateResult rotate_awskms(Installation& inst, providers::AwsKmsProvider& kms, const RotateOptions& options) {
    if (options.resume) return nothing_to_resume("awskms");
    std::string destination = options.to_key_id.value_or(kms.root_key_id());
    bool moves = destination != kms.root_key_id();
    auto target = kms.for_key(destination);
    store::KeyRow row = require_db_key_row(inst.store());
    OpenDbKey current = open_db_key(kms, row);
    RotateResult result;
    if (options.dry_run) {
        result.lines.push_back(fmt::format("re-encrypt the dbkey row inside KMS under {}", target->describe()));
        add_rekey_plan(inst, row, result);
        return result;
    }
    require_server_stopped(inst, options.server_stopped);
    KeyChange change = begin_key_change(inst.store(), row);
    NewWrapping next{kms.reencrypt(row.encrypted, destination), kms.algorithm(), destination};
    RekeyCounts counts =
        commit_rewrap(change, inst.store(), current, next, [&](ByteView w) { return target->unwrap(w); }, "rotate");
    result.lines.push_back(fmt::format("dbkey row {} re-encrypted under {}; {} encrypted values re-keyed", row.id,
                                       target->describe(), counts.values));
    if (moves)
        result.lines.push_back(fmt::format("update the server config: dbEncryptionKey must now be {} (it was {}; "
                                           "the config file was not changed)",
                                           destination, kms.root_key_id()));
    return result;
}

}  // namespace

RotateResult rotate_root(Installation& inst, const RotateOptions& options) {
    if (options.resume && options.dry_run) fail(ExitCode::usage, "rotate-root: --resume cannot be combined with --dry-run");
    refuse_what_the_release_cannot_run(inst);
    if (auto slots = key_slots(inst)) return rotate_native(inst, *slots, options);
    if (auto* vault = dynamic_cast<providers::VaultProvider*>(inst.provider.get()))
        return rotate_vault(inst, *vault, options);
    if (auto* kms = dynamic_cast<providers::AwsKmsProvider*>(inst.provider.get()))
        return rotate_awskms(inst, *kms, options);
    fail(ExitCode::usage, "rotate-root does not support the {} provider", inst.provider->kind());
}

RotateResult retire_old_keys(Installation& inst, bool dry_run) {
    auto slots = key_slots(inst);
    if (!slots)
        fail(ExitCode::usage, "--retire-old applies to native root keys only; the {} provider keeps its own old key "
             "versions", inst.provider->kind());
    std::optional<LockFile> lock;
    if (auto dir = slots->lock_directory()) lock.emplace(*dir);
    refuse_if_rotation_interrupted(inst);
    RotateResult result;
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
