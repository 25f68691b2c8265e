#include "ops/guard.h"

#include <cerrno>
#include <cstring>

#include <sys/statvfs.h>
#include <unistd.h>

#include "crypto/seal.h"
#include "ops/key_slots.h"
#include "util/error.h"
#include "util/files.h"
#include "util/processes.h"

namespace ik::ops {
namespace {

// Another run holding the key directory's lock or the database's change hold.
std::optional<std::string> change_in_progress(Installation& inst, const std::optional<KeySlots>& slots) {
    if (auto dir = slots ? slots->lock_directory() : std::nullopt)
        if (auto holder = LockFile::holder(*dir)) return fmt::format("{} holds the lock on {}", *holder, *dir);
    store::KeyStore* store = nullptr;
    try {
        store = &inst.store();
    } catch (const Error&) {
        return std::nullopt;  // a database that does not open is the command's own error to report, in its place
    }
    if (auto holder = store->change_holder())
        return fmt::format("{} holds the key change lock of {}", *holder, store->describe());
    return std::nullopt;
}

void refuse_if_in_progress(Installation& inst, const std::optional<KeySlots>& slots) {
    if (auto what = change_in_progress(inst, slots))
        throw Error(ExitCode::refused, "a key change is in progress: " + *what,
                    "wait for it to finish, then run the command again");
}

// A temp file, a retained copy and the new key: a few blocks is all a key change writes.
void check_key_directory(KeySlots& slots, size_t key_bytes) {
    auto dir = slots.lock_directory();
    if (!dir || key_bytes == 0) return;
    if (::access(dir->c_str(), W_OK) != 0)
        throw Error(ExitCode::provider, fmt::format("cannot write the key directory {}: {}", *dir, std::strerror(errno)),
                    "make it writable for this user (or remount it read-write), then run the command again");
    struct statvfs fs;
    if (::statvfs(dir->c_str(), &fs) != 0) return;
    uint64_t block = fs.f_frsize ? fs.f_frsize : fs.f_bsize;
    uint64_t needed_blocks = 4 * ((key_bytes + block - 1) / block);  // temp + new + retained, and slack
    if (fs.f_bavail < needed_blocks || (fs.f_files != 0 && fs.f_favail < 4))
        throw Error(ExitCode::provider,
                    fmt::format("the key directory {} is full: {} bytes free, the new key files need {}", *dir,
                                fs.f_bavail * block, needed_blocks * block),
                    "free some space there, then run the command again");
}

std::unique_ptr<store::ChangeHold> hold_database(Installation& inst, bool creating) {
    if (!creating) return inst.store().hold_changes();
    try {
        return inst.store().hold_changes();
    } catch (const Error& e) {
        if (e.code() != ExitCode::database) throw;
        return nullptr;  // no database yet: init creates it under its own transaction
    }
}

}  // namespace

void refuse_if_rotation_interrupted(Installation& inst) {
    auto slots = key_slots(inst);
    refuse_if_in_progress(inst, slots);
    if (!slots) return;
    auto next = slots->read(slots->next());
    if (!next) return;
    // A change holds its lock from before it stages a new key until it has installed it: a new
    // key seen with nobody holding the lock was left by a run that died, unless that run finished
    // between the two looks, and then the new key is gone.
    refuse_if_in_progress(inst, slots);
    next = slots->read(slots->next());
    if (!next) return;
    if (next->size() != seal::key_size)
        throw Error(ExitCode::interrupted,
                    fmt::format("{} is not a root key ({} bytes, a key has {}): a leftover or planted file, not a rotation",
                                slots->describe(slots->next()), next->size(), seal::key_size),
                    "remove it with `infra-keys rotate-root --abort`");
    throw Error(ExitCode::interrupted,
                fmt::format("a root key rotation was interrupted: {} holds a new key not yet installed",
                            slots->describe(slots->next())),
                "run `infra-keys rotate-root --resume` to complete it (the Infra server may not start until then), "
                "or `infra-keys rotate-root --abort` to drop it if it never committed");
}

void require_server_stopped(Installation& inst, bool asserted_stopped) {
    if (asserted_stopped) return;
    std::vector<std::string> users = inst.config.uses_postgres() || inst.db_url
                                         ? inst.store().other_clients()
                                         : processes::with_file_open(inst.config.db_file);
    if (users.empty()) return;
    std::string list;
    for (const auto& u : users) list += (list.empty() ? "" : ", ") + u;
    throw Error(ExitCode::refused,
                fmt::format("{} is in use by {}; stop the Infra server before changing keys", inst.store().describe(), list),
                "the server caches the wrapped db key and would re-seal values with the old key id; "
                "stop it, or pass --server-stopped if these are not Infra servers");
}

ChangeLock lock_and_check(Installation& inst, const ChangeChecks& checks) {
    auto slots = key_slots(inst);
    // A key directory that does not exist yet (init) is created by the write; nothing to lock.
    auto dir = slots ? slots->lock_directory() : std::nullopt;
    if (dir && !files::exists(*dir)) dir.reset();
    auto directory_lock = dir ? std::make_unique<LockFile>(*dir) : nullptr;
    ChangeLock lock(std::move(directory_lock), hold_database(inst, checks.creating));
    if (!checks.finishing) refuse_if_rotation_interrupted(inst);
    require_server_stopped(inst, checks.server_stopped);
    if (dir) check_key_directory(*slots, checks.key_bytes);
    return lock;
}

}  // namespace ik::ops
