#include "ops/rotation.h"

#include <chrono>
#include <filesystem>

#include <cerrno>
#include <cstring>
#include <unistd.h>

#include "crypto/random.h"
#include "ops/db_key.h"
#include "ops/guard.h"
#include "ops/rekey.h"
#include "ops/verify.h"
#include "providers/native.h"
#include "util/error.h"
#include "util/failpoint.h"
#include "util/files.h"
#include "util/lock_file.h"

// The order of a native file rotation (P = the configured key file):
//   1. write the new key to P.new      (temp, fsync, rename, fsync dir)      failpoint rotate-after-write-new-key
//   2. keep the old key: link P.<stamp>.retired → P's inode, fsync dir         failpoint rotate-after-retain
//   3. one transaction: dbkey row re-wrapped by P.new, every value re-keyed  failpoints rotate-before/after-commit
//   4. rename P.new over P, fsync dir                                          failpoint rotate-after-install
// Before 3 commits the row opens with P; after, with P.new until 4, then with P. A leftover P.new
// is what every command detects, and --resume finishes from whichever of the two opens the row.

namespace ik::ops {
namespace {

std::string utc_stamp() {
    auto now = std::chrono::system_clock::now();
    std::time_t t = std::chrono::system_clock::to_time_t(now);
    std::tm tm{};
    gmtime_r(&t, &tm);
    auto micros = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() % 1000000;
    return fmt::format("{:04}{:02}{:02}T{:02}{:02}{:02}.{:06}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                       tm.tm_min, tm.tm_sec, micros);
}

bool opens(providers::RootKeyProvider& provider, const store::KeyRow& row) {
    try {
        provider.unwrap(row.encrypted);
        return true;
    } catch (const Error& e) {
        if (e.code() == ExitCode::wrong_key) return false;
        throw;
    }
}

// Step 2: the old key must survive step 4. Idempotent: a retained copy of P counts.
void retain_old_key(const KeyFiles& files, RotateResult& result) {
    auto current = files::read_secret(files.key);
    for (const auto& retired : files.retained())
        if (files::read_secret(retired) == current) {
            result.lines.push_back(fmt::format("previous root key already retained as {}", retired));
            return;
        }
    std::string retired = files.retired(utc_stamp());
    if (::link(files.key.c_str(), retired.c_str()) != 0)
        fail(ExitCode::provider, "cannot keep the previous root key as {}: {}", retired, std::strerror(errno));
    files::fsync_directory(files::directory_of(retired));
    result.lines.push_back(fmt::format("previous root key retained as {}", retired));
    failpoint("rotate-after-retain");
}

// Steps 2–4, from a new key already durable at P.new and a row that opens with P.
void finish_from_old_wrapping(Installation& inst, const KeyFiles& files, const store::KeyRow& row, RotateResult& result) {
    auto old_key = providers::make_native_file(files.key);
    auto new_key = providers::make_native_file(files.next());
    OpenDbKey current = open_db_key(*old_key, row);
    retain_old_key(files, result);
    NewWrapping next{new_key->wrap(current.plaintext), std::string(new_key->algorithm()), row.root_key_id};
    RekeyCounts counts = commit_rewrap(inst.store(), current, next,
                                       [&](ByteView w) { return new_key->unwrap(w); }, "rotate");
    result.lines.push_back(fmt::format("dbkey row {} re-wrapped by the new root key; {} encrypted values re-keyed", row.id,
                                       counts.values));
}

// Step 4.
void install_new_key(const KeyFiles& files, RotateResult& result) {
    if (::rename(files.next().c_str(), files.key.c_str()) != 0)
        fail(ExitCode::provider, "cannot install {} as {}: {}", files.next(), files.key, std::strerror(errno));
    files::fsync_directory(files::directory_of(files.key));
    failpoint("rotate-after-install");
    result.lines.push_back(fmt::format("new root key installed at {}", files.key));
}

RotateResult resume(Installation& inst, const KeyFiles& files, const store::KeyRow& row) {
    RotateResult result;
    if (!files::exists(files.next())) {
        result.nothing_to_do = true;
        result.lines.push_back("rotate-root: nothing to resume: no interrupted rotation found");
        return result;
    }
    auto new_key = providers::make_native_file(files.next());
    if (opens(*new_key, row)) {
        result.lines.push_back("the interrupted rotation had committed; finishing it");
        retain_old_key(files, result);
    } else if (opens(*providers::make_native_file(files.key), row)) {
        result.lines.push_back("the interrupted rotation had not committed; completing it with the new key it wrote");
        finish_from_old_wrapping(inst, files, row, result);
    } else {
        fail(ExitCode::wrong_key, "neither {} nor {} unwraps dbkey row {}; not touching anything", files.key,
             files.next(), row.id);
    }
    install_new_key(files, result);
    return result;
}

void plan(Installation& inst, const KeyFiles& files, const store::KeyRow& row, RotateResult& result) {
    result.lines.push_back(fmt::format("write a new 32-byte root key to {} (0600)", files.next()));
    result.lines.push_back(fmt::format("retain the current root key as {}", files.retired("<time>")));
    result.lines.push_back(fmt::format("re-wrap dbkey row {} in {} in one transaction, re-keying:", row.id,
                                       inst.store().describe()));
    for (const auto& [column, count] : values_to_rekey(inst.store()))
        result.lines.push_back(fmt::format("  {} values in {}", count, column));
    result.lines.push_back(fmt::format("rename {} to {}", files.next(), files.key));
}

}  // namespace

RotateResult rotate_root(Installation& inst, const RotateOptions& options) {
    auto files = key_files(inst);
    if (!files)
        fail(ExitCode::usage, "rotate-root does not support the {} provider yet", inst.config.active_provider().kind);
    LockFile lock(files->lock());
    store::KeyRow row = require_db_key_row(inst.store());

    if (options.resume) {
        require_server_stopped(inst, options.server_stopped);
        files->remove_stale_temp_files();
        return resume(inst, *files, row);
    }
    refuse_if_rotation_interrupted(inst);
    open_db_key(*inst.provider, row);  // the configured key must open it before we start

    RotateResult result;
    if (options.dry_run) {
        plan(inst, *files, row, result);
        return result;
    }
    require_server_stopped(inst, options.server_stopped);
    files->remove_stale_temp_files();

    SecretBytes new_key = crypto::random_key();
    files::write_atomic(files->next(), new_key, 0600);
    failpoint("rotate-after-write-new-key");
    result.lines.push_back(fmt::format("new root key written to {}", files->next()));
    finish_from_old_wrapping(inst, *files, row, result);
    install_new_key(*files, result);
    return result;
}

RotateResult retire_old_keys(Installation& inst, bool dry_run) {
    auto files = key_files(inst);
    if (!files) fail(ExitCode::usage, "--retire-old applies to native root keys in files only");
    LockFile lock(files->lock());
    refuse_if_rotation_interrupted(inst);
    RotateResult result;
    auto retained = files->retained();
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
    for (const auto& path : retained) {
        if (!dry_run) std::filesystem::remove(path);
        result.lines.push_back(fmt::format("{}retired {}", dry_run ? "would have " : "", path));
    }
    if (!dry_run) files::fsync_directory(files::directory_of(files->key));
    return result;
}

}  // namespace ik::ops
