#include "util/failpoint.h"

#include <csignal>
#include <cstdlib>
#include <unistd.h>

namespace ik {

void failpoint(std::string_view name) {
    static const char* chosen = std::getenv("INFRA_KEYS_FAILPOINT");
    if (chosen != nullptr && name == chosen) {
        ::kill(::getpid(), SIGKILL);
        ::_exit(137);  // not reached
    }
}

}  // namespace ik
