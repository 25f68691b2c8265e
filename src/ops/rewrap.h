// `rewrap`: the dbkey row re-wrapped under the configured root key, from whichever key opens it
// (the configured one, a retained one, --from-key, or the provider of --from-config).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "ops/installation.h"

namespace ik::ops {

struct RewrapOptions {
    std::optional<std::string> from_key;     // a native root key file
    std::optional<std::string> from_config;  // another Infra config: its provider opens the row
    bool dry_run = false;
    bool server_stopped = false;
};

struct RewrapResult {
    std::vector<std::string> lines;
    bool nothing_to_do = false;
};

RewrapResult rewrap(Installation& inst, const RewrapOptions& options);

}  // namespace ik::ops
