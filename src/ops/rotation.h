// `rotate-root`: a new root key for the same db key, ordered so a crash at any instant leaves a
// key that unwraps the dbkey row, and `--resume` can always finish the job. Native keys (files
// or Kubernetes) get a new key in a slot beside the old; Vault a new transit key version; AWS
// KMS a ReEncrypt under the same or another KMS key.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "ops/installation.h"

namespace ik::ops {

struct RotateOptions {
    bool dry_run = false;
    bool resume = false;
    bool server_stopped = false;
    std::optional<std::string> to_key_id;  // awskms: re-wrap under this KMS key instead of the configured one
};

struct RotateResult {
    std::vector<std::string> lines;  // what was done (or, for a dry run, would be), in order
    bool nothing_to_do = false;
    bool kept_old_key = false;  // a native rotation retained the previous key (see --retire-old)
};

RotateResult rotate_root(Installation& inst, const RotateOptions& options);

// Deletes the retained previous root keys once `verify --level full` passes with the configured one.
RotateResult retire_old_keys(Installation& inst, bool dry_run);

}  // namespace ik::ops
