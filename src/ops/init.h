// `init`: creates the root key and the dbkey row exactly as the Infra server would, if missing.
#pragma once

#include <string>
#include <vector>

#include "ops/installation.h"

namespace ik::ops {

struct InitPlan {
    bool create_root_key = false;
    bool create_key_table = false;
    bool create_db_key = false;
    std::vector<std::string> steps;  // human-readable, in order; empty when nothing to do
    bool nothing_to_do() const { return steps.empty(); }
};

// Looks, writes nothing. Throws ik::Error when init must refuse: a dbkey row the configured
// root key cannot unwrap (wrong key, not something to re-initialise), a dbkey row without its
// root key, or encrypted values without a dbkey row.
InitPlan plan_init(Installation& inst);

// Carries out the plan; the new dbkey row is unwrapped again before its transaction commits.
void apply_init(Installation& inst, const InitPlan& plan);

}  // namespace ik::ops
