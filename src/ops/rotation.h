// `rotate-root`: a new root key for the same db key, through the key-change pipeline (pipeline.h):
// a refusal or failure before the commit leaves everything as it was, and after a kill `--resume`
// finishes the job or `--abort` drops a rotation that never committed. Native keys (files or
// Kubernetes) get a new key in a slot beside the old; providers that rotate in place (Vault: a
// new key version; AWS KMS: ReEncrypt) do it themselves.
#pragma once

#include <optional>
#include <string>

#include "ops/backup.h"
#include "ops/installation.h"
#include "util/output.h"

namespace ik::ops {

struct RotateOptions {
    bool dry_run = false;
    bool resume = false;
    bool abort = false;  // drop a rotation that was killed before its commit
    bool server_stopped = false;
    std::optional<std::string> to_key_id;  // awskms: re-wrap under this KMS key instead of the configured one
    std::function<void(const std::string&)> on_step;  // each step line as it happens
    // --backup FILE: a backup of the new keys, written and re-opened between stage and commit.
    const BackupTarget* backup = nullptr;
};

struct RotateResult {
    out::Steps lines;  // what was done (or, for a dry run, would be), in order
    bool nothing_to_do = false;
    bool kept_old_key = false;  // a native rotation retained the previous key (see --retire-old)
    uint64_t values = 0;        // encrypted values re-keyed (or, for a dry run, to re-key)
};

RotateResult rotate_root(Installation& inst, const RotateOptions& options);

// Deletes the retained previous root keys once `verify --level full` passes with the configured one.
RotateResult retire_old_keys(Installation& inst, bool dry_run, const std::function<void(const std::string&)>& on_step = {});

}  // namespace ik::ops
