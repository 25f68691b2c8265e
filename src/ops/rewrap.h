// `rewrap`: the dbkey row re-wrapped under the configured root key, from whichever key opens it
// (the configured one, a retained one, --from-key, or the provider of --from-config).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "ops/installation.h"
#include "util/output.h"

namespace ik::ops {

struct RewrapOptions {
    std::optional<std::string> from_key;     // a native root key file
    std::optional<std::string> from_config;  // another Infra config: its provider opens the row
    bool dry_run = false;
    bool server_stopped = false;
    std::function<void(const std::string&)> on_step;  // each step line as it happens
};

struct RewrapResult {
    out::Steps lines;
    bool nothing_to_do = false;
    uint64_t values = 0;  // encrypted values re-keyed
};

RewrapResult rewrap(Installation& inst, const RewrapOptions& options);

}  // namespace ik::ops
