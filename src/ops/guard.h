// Checks every mutating command makes before it writes: no interrupted rotation, server stopped.
#pragma once

#include <string>

#include "ops/installation.h"

namespace ik::ops {

// Throws ik::Error(interrupted) with the command to run when a rotation was cut short.
void refuse_if_rotation_interrupted(Installation& inst);

// docs/infra-format.md §6: the server caches the wrapped db key and re-seals values with it, so keys must not
// change under a running server. Throws ik::Error(refused) naming what uses the database,
// unless the operator asserts with --server-stopped that nothing does.
void require_server_stopped(Installation& inst, bool asserted_stopped);

}  // namespace ik::ops
