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

void refuse_if_in_progress(KeySlots& slots) {
    auto dir = slots.lock_directory();
    if (!dir) return;
    if (auto holder = LockFile::holder(*dir))
        throw Error(ExitCode::refused, fmt::format("a key change is in progress: {} holds the lock on {}", *holder, *dir),
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

}  // namespace

void refuse_if_rotation_interrupted(Installation& inst) {
    auto slots = key_slots(inst);
    if (!slots) return;
    refuse_if_in_progress(*slots);
    auto next = slots->read(slots->next());
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
    ChangeLock lock = dir ? ChangeLock(*dir) : ChangeLock();
    if (!checks.finishing) refuse_if_rotation_interrupted(inst);
    require_server_stopped(inst, checks.server_stopped);
    if (dir) check_key_directory(*slots, checks.key_bytes);
    return lock;
}

}  // namespace ik::ops
