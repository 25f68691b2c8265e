// The order every key change goes through, and what undoes it:
//   plan     read only: config, provider, store, and every check that can refuse (lock_and_check
//            in guard.h, the journal's free disk, the provider's target key); --dry-run is exactly
//            this step plus the census, and exits with the code the real run would
//   stage    new key material written beside the key (temp, fsync, rename, fsync dir), the old kept
//   commit   the one transaction: one pass re-keys every sealed value, the census under the new
//            row proves it before the commit, or names a value that blocks it (rekey.h)
//   install  the new key moved over the old, then clean up
// A failure or refusal before the commit undoes what stage wrote, in the same run, so the
// installation is byte-for-byte what it was; only a kill leaves staged keys behind (then
// `rotate-root --resume` finishes, or `rotate-root --abort` drops a rotation that never committed).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "ops/installation.h"
#include "ops/key_slots.h"
#include "ops/rekey.h"
#include "util/error.h"
#include "util/output.h"

namespace ik::ops {

// "  N values in table.column", a line per column, under the line that counts them all.
void append_counts(const std::vector<std::pair<std::string, uint64_t>>& values_by_column, out::Steps& lines);

// Whether the live dbkey row changed since `before`, read back after a failure: a commit happened
// (or we cannot tell, so assume it did and keep what was written).
bool committed_since(Installation& inst, const store::KeyRow& before);

// The key material a change wrote before its commit, so that a failure can take it back.
class StagedKeys {
public:
    // Removes the temp copies of keys that killed runs left beside the key (nobody else knows of
    // them, and the caller holds the key directory's lock), saying so.
    explicit StagedKeys(KeySlots& slots);
    StagedKeys(const StagedKeys&) = delete;
    StagedKeys& operator=(const StagedKeys&) = delete;

    // Claims `slot` with `key` (ik::Error(refused) if it exists); undo deletes it.
    void create(const std::string& slot, const SecretBytes& key);
    // Replaces `slot` with `key`; undo writes back what it held (or deletes it if it held nothing).
    void replace(const std::string& slot, const SecretBytes& key);
    // The change committed: nothing may be undone any more.
    void keep() { written_.clear(); }

    // The error to report for `cause`, a failure before the commit: everything staged is undone
    // newest first, and the message says so (or, if undoing failed too, what is left and how to
    // clear it).
    Error undo(const Error& cause);

private:
    struct Written {
        std::string slot;
        std::optional<SecretBytes> previous;  // what a replaced slot held
    };
    KeySlots& slots_;
    std::vector<Written> written_;
};

}  // namespace ik::ops
