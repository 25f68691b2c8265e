#include "util/output.h"

#include <cstdio>
#include <unistd.h>

namespace ik::out {
namespace {
Level current = Level::normal;
}

void set_level(Level level) { current = level; }
Level level() { return current; }

void result_line(const std::string& line) {
    if (current == Level::quiet) return;
    std::fputs(line.c_str(), stdout);
    std::fputc('\n', stdout);
}

void detail_line(const std::string& line) {
    if (current != Level::verbose) return;
    std::fflush(stdout);
    std::fprintf(stderr, "infra-keys: %s\n", line.c_str());
}

void warning(const std::string& line) {
    std::fflush(stdout);
    std::fprintf(stderr, "infra-keys: warning: %s\n", line.c_str());
}

bool stderr_is_terminal() { return ::isatty(STDERR_FILENO) == 1; }

}  // namespace ik::out
