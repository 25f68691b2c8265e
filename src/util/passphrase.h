// Where a backup passphrase comes from: a file, a file descriptor, a command, the environment, or a
// prompt on the terminal without echo. Never from a command-line argument (it would show in `ps`).
#pragma once

#include <optional>
#include <string>

#include "util/bytes.h"

namespace ik::passphrase {

struct Source {
    std::optional<std::string> file;     // --passphrase-file
    std::optional<int> fd;               // --passphrase-fd
    std::optional<std::string> command;  // --passphrase-command (run with /bin/sh -c, its stdout)
    bool confirm = false;                // prompt twice (when creating a backup)
    bool allow_weak = false;             // --allow-weak-passphrase
    bool stdin_taken = false;            // stdin carries the backup itself (restore -): fd 0 cannot
};

constexpr size_t minimum_length = 12;

// The passphrase, by one rule for every source: exactly one trailing "\n" or "\r\n" is removed,
// and what remains must be one line. An option beats the environment: --passphrase-file,
// --passphrase-fd or --passphrase-command (at most one), else $INFRA_KEYS_PASSPHRASE_FILE, else
// $INFRA_KEYS_PASSPHRASE (not both), else the prompt. Throws ik::Error(usage) when there is none,
// a source cannot be read, it has several lines, the two prompts differ, or it is shorter than
// minimum_length and weak ones are not allowed.
SecretBytes read(const Source& source);

// The one rule, on its own: `text` without one trailing line ending; throws ik::Error(usage)
// naming `where` if another line remains.
SecretBytes one_line(SecretBytes text, const std::string& where);

}  // namespace ik::passphrase
