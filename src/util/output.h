// Where text goes: results on stdout, warnings and progress on stderr, all honouring --quiet/--verbose.
#pragma once

#include <string>

#include <fmt/format.h>

namespace ik::out {

enum class Level { quiet, normal, verbose };
void set_level(Level level);
Level level();

void result_line(const std::string& line);   // stdout; suppressed by --quiet
void detail_line(const std::string& line);   // stderr "infra-keys: …"; only with --verbose (stdout may be data)
void warning(const std::string& line);       // stderr "infra-keys: warning: …"; shown even when quiet
bool stderr_is_terminal();

template <typename... Args>
void result(fmt::format_string<Args...> f, Args&&... args) { result_line(fmt::format(f, std::forward<Args>(args)...)); }
template <typename... Args>
void detail(fmt::format_string<Args...> f, Args&&... args) { detail_line(fmt::format(f, std::forward<Args>(args)...)); }
template <typename... Args>
void warn(fmt::format_string<Args...> f, Args&&... args) { warning(fmt::format(f, std::forward<Args>(args)...)); }

}  // namespace ik::out
