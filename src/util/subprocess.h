// Runs a credential helper (a kubectl exec plugin, an AWS credential_process) and collects what
// it prints: the only way infra-keys starts another program.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "util/bytes.h"

namespace ik::subprocess {

struct Run {
    int spawn_error = 0;  // errno when the program could not be started (ENOENT: not found)
    int status = 0;       // waitpid status once it ran
    SecretBytes output;   // stdout, up to the limit: it holds a credential
};

// infra-keys' own environment with `overrides` replacing or adding variables (the last of
// duplicate names wins), as NAME=VALUE entries.
std::vector<std::string> environment_with(const std::vector<std::pair<std::string, std::string>>& overrides);

// Runs argv[0] (looked up in PATH when it has no slash) with `environment` as its whole
// environment; stdin is /dev/null unless `inherit_stdin`, stderr is infra-keys' own, so the
// program's prompts and errors reach the operator. The environment entries are scrubbed.
Run run(const std::vector<std::string>& argv, std::vector<std::string> environment, bool inherit_stdin,
        size_t output_limit = 1024 * 1024);

// "exit code 3" or "signal 9", for messages.
std::string describe_status(int status);

}  // namespace ik::subprocess
