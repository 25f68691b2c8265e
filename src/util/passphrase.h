// Where a backup passphrase comes from: a file, a file descriptor, the environment, or a prompt
// on the terminal without echo. Never from a command-line argument (it would show in `ps`).
#pragma once

#include <optional>
#include <string>

#include "util/bytes.h"

namespace ik::passphrase {

struct Source {
    std::optional<std::string> file;  // --passphrase-file
    std::optional<int> fd;             // --passphrase-fd
    bool confirm = false;              // prompt twice (when creating a backup)
    bool allow_weak = false;           // --allow-weak-passphrase
};

constexpr size_t minimum_length = 12;

// The passphrase, without one trailing newline. Throws ik::Error(usage) when there is none, the
// two prompts differ, or it is shorter than minimum_length and weak ones are not allowed.
SecretBytes read(const Source& source);

}  // namespace ik::passphrase
