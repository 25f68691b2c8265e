// The one error type of infra-keys: a category (which decides the exit code) and a one-line message.
#pragma once

#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace ik {

// Exit codes are a public interface (README, man page): never renumber, never reuse.
enum class ExitCode : int {
    ok = 0,
    problems = 1,      // verification ran and found values or keys that do not decrypt
    usage = 2,         // bad command line or configuration (YAML, unknown provider, missing secret)
    provider = 3,      // root key or provider unreachable, missing or malformed
    database = 4,      // database cannot be opened, read or written; not an Infra database
    wrong_key = 5,     // the configured root key does not unwrap the db key
    backup = 6,        // backup file unreadable: wrong passphrase, tampered, truncated, unknown format
    refused = 7,       // refused to do something unsafe (overwrite, replace a key, server running, locked)
    interrupted = 8,   // an interrupted rotation was found; `infra-keys rotate-root --resume` completes it
    internal = 70,     // a bug in infra-keys (EX_SOFTWARE); nothing was written past the last commit
};

class Error : public std::runtime_error {
public:
    Error(ExitCode code, std::string message, std::string hint = {})
        : std::runtime_error(std::move(message)), code_(code), hint_(std::move(hint)) {}

    ExitCode code() const { return code_; }
    const std::string& hint() const { return hint_; }

private:
    ExitCode code_;
    std::string hint_;
};

template <typename... Args>
[[noreturn]] void fail(ExitCode code, fmt::format_string<Args...> format, Args&&... args) {
    throw Error(code, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace ik
