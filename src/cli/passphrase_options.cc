// The passphrase options backup and restore share (never a passphrase argument: it would show in `ps`).
#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "util/passphrase.h"

namespace ik::cli {

void add_passphrase_options(CLI::App* sub, passphrase::Source& source) {
    sub->add_option("--passphrase-file", source.file,
                    "read the passphrase from FILE (else $INFRA_KEYS_PASSPHRASE_FILE): one line, its line ending removed");
    sub->add_option("--passphrase-fd", source.fd, "read the passphrase from file descriptor N (one line)");
    sub->add_option("--passphrase-command", source.command,
                    "run CMD with /bin/sh and read the passphrase from its output (one line)");
}

}  // namespace ik::cli
