// Fault injection for crash-safety tests: INFRA_KEYS_FAILPOINT=<name> kills the process there.
#pragma once

#include <string_view>

namespace ik {

// If INFRA_KEYS_FAILPOINT names this point, the process dies at once with SIGKILL, exactly
// as a power cut or `kill -9` would leave things (no destructors, no buffered writes flushed).
// With INFRA_KEYS_FAILPOINT=<name>:stop it stops itself (SIGSTOP) instead, so a test can break
// something underneath it (e.g. terminate its database session) and let it go on with SIGCONT.
void failpoint(std::string_view name);

}  // namespace ik
