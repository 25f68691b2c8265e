#include "util/subprocess.h"

#include <cerrno>
#include <cstring>
#include <map>
#include <stdexcept>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <botan/mem_ops.h>
#include <fmt/format.h>

extern char** environ;

namespace ik::subprocess {

std::vector<std::string> environment_with(const std::vector<std::pair<std::string, std::string>>& overrides) {
    std::map<std::string, std::string> vars;
    std::vector<std::string> order;
    auto put = [&](const std::string& name, const std::string& value) {
        if (!vars.count(name)) order.push_back(name);
        vars[name] = value;
    };
    for (char** entry = environ; entry && *entry; ++entry) {
        std::string text(*entry);
        size_t eq = text.find('=');
        if (eq != std::string::npos) put(text.substr(0, eq), text.substr(eq + 1));
    }
    for (const auto& [name, value] : overrides) put(name, value);
    std::vector<std::string> out;
    for (const auto& name : order) out.push_back(name + "=" + vars[name]);
    for (auto& [name, value] : vars) Botan::secure_scrub_memory(value.data(), value.size());
    return out;
}

Run run(const std::vector<std::string>& argv_text, std::vector<std::string> environment, bool inherit_stdin,
        size_t output_limit) {
    std::vector<std::string> args = argv_text;
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (auto& var : environment) envp.push_back(var.data());
    envp.push_back(nullptr);

    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw std::runtime_error(fmt::format("pipe: {}", std::strerror(errno)));
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    if (!inherit_stdin) posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);

    Run result;
    pid_t pid = 0;
    result.spawn_error = ::posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    for (auto& var : environment) Botan::secure_scrub_memory(var.data(), var.size());  // AWS keys, tokens
    ::close(pipe_fds[1]);
    if (result.spawn_error != 0) {
        ::close(pipe_fds[0]);
        return result;
    }
    char buffer[4096];
    for (;;) {
        ssize_t n = ::read(pipe_fds[0], buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        if (result.output.size() + static_cast<size_t>(n) <= output_limit)
            result.output.insert(result.output.end(), buffer, buffer + n);
    }
    Botan::secure_scrub_memory(buffer, sizeof buffer);
    ::close(pipe_fds[0]);
    while (::waitpid(pid, &result.status, 0) < 0 && errno == EINTR) {
    }
    return result;
}

std::string describe_status(int status) {
    if (WIFSIGNALED(status)) return fmt::format("signal {}", WTERMSIG(status));
    return fmt::format("exit code {}", WEXITSTATUS(status));
}

}  // namespace ik::subprocess
