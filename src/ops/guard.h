// The lock-and-check sequence every command that changes keys goes through before it writes
// (dry runs too, so they predict the refusal), and the check every other command makes.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "ops/installation.h"
#include "util/lock_file.h"

namespace ik::ops {

// Exit 7 naming the holder while another process changes these keys ("in progress"); exit 8 when
// a rotation was cut short and nothing holds the lock ("interrupted"), with the command that
// finishes or drops it; a KEY.new that is no key is named as such.
void refuse_if_rotation_interrupted(Installation& inst);

// The server caches the wrapped db key and re-seals values with it, so keys must not
// change under a running server. Throws ik::Error(refused) naming what uses the database,
// unless the operator asserts with --server-stopped that nothing does.
void require_server_stopped(Installation& inst, bool asserted_stopped);

struct ChangeChecks {
    bool server_stopped = false;  // --server-stopped: skip detecting the server
    bool finishing = false;       // --resume / --abort: a rotation left behind is what we came for
    size_t key_bytes = 0;         // what the change will write beside the key (0: no key files)
    bool creating = false;        // init: the database may not exist yet (then there is none to hold)
};

// Held for the whole key change, until its new key is installed: the key directory's lock (keys
// in files) and the database's change hold (store::ChangeHold), which is what a change whose keys
// live elsewhere (a Kubernetes Secret, a KMS) is seen by.
class ChangeLock {
public:
    ChangeLock() = default;
    ChangeLock(std::unique_ptr<LockFile> directory, std::unique_ptr<store::ChangeHold> database)
        : directory_(std::move(directory)), database_(std::move(database)) {}

private:
    std::unique_ptr<LockFile> directory_;
    std::unique_ptr<store::ChangeHold> database_;
};

// In this order: lock the key directory and hold the database (exit 7 naming the holder), refuse a rotation left behind
// (unless finishing), refuse a running server, and prove the key directory can take `key_bytes`
// (writable, free space: exit 3). Every key-changing command calls it before it writes.
ChangeLock lock_and_check(Installation& inst, const ChangeChecks& checks);

}  // namespace ik::ops
