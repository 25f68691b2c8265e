// Where text goes: results on stdout, warnings and progress on stderr, all honouring --quiet/--verbose.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <fmt/format.h>

namespace ik::out {

enum class Level { quiet, normal, verbose };
void set_level(Level level);
Level level();

// --json: result lines are kept for the JSON outcome instead of printed.
void set_collect(bool collect);
const std::vector<std::string>& collected();  // result lines kept while collecting
const std::vector<std::string>& warnings();   // every warning given so far

void result_line(const std::string& line);   // stdout; suppressed by --quiet
void detail_line(const std::string& line);   // stderr "infra-keys: …"; only with --verbose (stdout may be data)
void warning(const std::string& line);       // stderr "infra-keys: warning: …"; shown even when quiet
bool stderr_is_terminal();

// The lines a command reports as it works: each reaches `on_line` when it happens (so a log shows
// which steps finished before a kill), and all are kept for the command's outcome (--json).
class Steps {
public:
    std::function<void(const std::string&)> on_line;

    void push_back(std::string line) {
        if (on_line) on_line(line);
        lines_.push_back(std::move(line));
    }
    const std::vector<std::string>& lines() const { return lines_; }
    auto begin() const { return lines_.begin(); }
    auto end() const { return lines_.end(); }

private:
    std::vector<std::string> lines_;
};

template <typename... Args>
void result(fmt::format_string<Args...> f, Args&&... args) { result_line(fmt::format(f, std::forward<Args>(args)...)); }
template <typename... Args>
void detail(fmt::format_string<Args...> f, Args&&... args) { detail_line(fmt::format(f, std::forward<Args>(args)...)); }
template <typename... Args>
void warn(fmt::format_string<Args...> f, Args&&... args) { warning(fmt::format(f, std::forward<Args>(args)...)); }

}  // namespace ik::out
