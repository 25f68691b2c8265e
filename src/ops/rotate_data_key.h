// `rotate-data-key`: a new db key from the configured provider, replacing the dbkey row's wrapped
// key in place, with every value it sealed opened and sealed again under the new key — all in the
// key-change pipeline's one transaction (pipeline.h), proven by reading it back before the commit.
// Nothing is staged outside that transaction (but an optional --backup file), so a kill leaves the
// old or the new state, and there is nothing to resume.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "ops/backup.h"
#include "ops/installation.h"
#include "util/output.h"

namespace ik::ops {

struct DataKeyOptions {
    bool dry_run = false;
    bool server_stopped = false;
    // --backup FILE: the new key material, written and re-opened before the commit (KeyChangeBackup).
    const BackupTarget* backup = nullptr;
    std::function<void(const std::string&)> on_step;  // each step line as it happens
};

struct DataKeyResult {
    out::Steps lines;
    uint64_t values = 0;  // values re-sealed under the new db key (dry run: to re-seal)
};

DataKeyResult rotate_data_key(Installation& inst, const DataKeyOptions& options);

}  // namespace ik::ops
