#include "util/output.h"

#include <cstdio>
#include <unistd.h>

namespace ik::out {
namespace {
Level current = Level::normal;
bool collecting = false;
std::vector<std::string> results, warnings_given;
}

void set_level(Level level) { current = level; }
Level level() { return current; }
void set_collect(bool collect) { collecting = collect; }
const std::vector<std::string>& collected() { return results; }
const std::vector<std::string>& warnings() { return warnings_given; }

void result_line(const std::string& line) {
    if (collecting) {
        results.push_back(line);
        return;
    }
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
    warnings_given.push_back(line);
    std::fflush(stdout);
    std::fprintf(stderr, "infra-keys: warning: %s\n", line.c_str());
}

bool stderr_is_terminal() { return ::isatty(STDERR_FILENO) == 1; }

}  // namespace ik::out
