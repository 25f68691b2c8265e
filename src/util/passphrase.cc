#include "util/passphrase.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <fcntl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <fmt/ranges.h>

#include "util/error.h"
#include "util/output.h"

namespace ik::passphrase {
namespace {

constexpr const char* env_passphrase = "INFRA_KEYS_PASSPHRASE";
constexpr const char* env_passphrase_file = "INFRA_KEYS_PASSPHRASE_FILE";

// Everything `fd` gives until end of file; `what` names it in the error ("passphrase file F").
SecretBytes read_all(int fd, const std::string& what) {
    SecretBytes out;
    uint8_t buffer[256];
    for (;;) {
        ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            Botan::secure_scrub_memory(buffer, sizeof buffer);
            fail(ExitCode::usage, "cannot read the passphrase from {}: {}", what, std::strerror(errno));
        }
        if (n == 0) break;
        out.insert(out.end(), buffer, buffer + n);
    }
    Botan::secure_scrub_memory(buffer, sizeof buffer);
    return out;
}

SecretBytes from_file(const std::string& path, const std::string& what) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) fail(ExitCode::usage, "{} does not exist", what);
    if (fd < 0) fail(ExitCode::usage, "cannot read the passphrase from {}: {}", what, std::strerror(errno));
    try {
        SecretBytes content = read_all(fd, what);
        ::close(fd);
        return content;
    } catch (...) {
        ::close(fd);
        throw;
    }
}

// Runs `command` with /bin/sh and takes its standard output; stdin and stderr stay the caller's,
// so the command may itself ask on the terminal (a password manager, `pass show`, `gpg -d`).
SecretBytes from_command(const std::string& command) {
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) fail(ExitCode::usage, "--passphrase-command: cannot run it: {}", std::strerror(errno));
    pid_t pid = ::fork();
    if (pid < 0) fail(ExitCode::usage, "--passphrase-command: cannot run it: {}", std::strerror(errno));
    if (pid == 0) {
        ::dup2(pipe_fds[1], STDOUT_FILENO);  // dup2 clears O_CLOEXEC on the copy
        ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
        ::_exit(127);
    }
    ::close(pipe_fds[1]);
    SecretBytes output;
    try {
        output = read_all(pipe_fds[0], "--passphrase-command");
    } catch (...) {
        ::close(pipe_fds[0]);
        ::waitpid(pid, nullptr, 0);
        throw;
    }
    ::close(pipe_fds[0]);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (WIFSIGNALED(status)) fail(ExitCode::usage, "--passphrase-command was killed by signal {}", WTERMSIG(status));
    if (WEXITSTATUS(status) != 0)
        fail(ExitCode::usage, "--passphrase-command failed (exit status {}); no passphrase", WEXITSTATUS(status));
    return output;
}

// Reads one line from the terminal with echo off, restoring the terminal whatever happens. The
// newline is kept, so that the one rule in one_line() treats typed and stored passphrases alike.
SecretBytes prompt(int tty, const char* question) {
    ::write(tty, question, std::strlen(question));
    termios saved{};
    bool restore = ::tcgetattr(tty, &saved) == 0;
    if (restore) {
        termios quiet = saved;
        quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
        ::tcsetattr(tty, TCSAFLUSH, &quiet);
    }
    SecretBytes line;
    char c;
    while (::read(tty, &c, 1) == 1) {
        line.push_back(static_cast<uint8_t>(c));
        if (c == '\n') break;
    }
    if (restore) ::tcsetattr(tty, TCSAFLUSH, &saved);
    ::write(tty, "\n", 1);
    return line;
}

SecretBytes from_terminal(bool confirm) {
    int tty = ::open("/dev/tty", O_RDWR | O_CLOEXEC);
    if (tty < 0)
        throw Error(ExitCode::usage, "no passphrase given and no terminal to ask on",
                    "use --passphrase-file FILE, --passphrase-fd N, --passphrase-command CMD, "
                    "INFRA_KEYS_PASSPHRASE_FILE or INFRA_KEYS_PASSPHRASE");
    SecretBytes first = prompt(tty, "Backup passphrase: ");
    if (confirm && prompt(tty, "Repeat passphrase: ") != first) {
        ::close(tty);
        fail(ExitCode::usage, "the two passphrases differ");
    }
    ::close(tty);
    return one_line(std::move(first), "the terminal");
}

void refuse_conflicts(const Source& source) {
    std::vector<std::string> given;
    if (source.file) given.push_back("--passphrase-file");
    if (source.fd) given.push_back("--passphrase-fd");
    if (source.command) given.push_back("--passphrase-command");
    if (given.size() > 1)
        fail(ExitCode::usage, "{} cannot be used together: each gives the passphrase; use one", fmt::join(given, " and "));
    if (source.fd && *source.fd == STDIN_FILENO && source.stdin_taken)
        throw Error(ExitCode::usage, "--passphrase-fd 0 reads stdin, which already carries the backup (-)",
                    "give the passphrase another way: --passphrase-file FILE, --passphrase-fd 3 3<FILE, "
                    "or INFRA_KEYS_PASSPHRASE_FILE");
    if (given.empty() && std::getenv(env_passphrase) && std::getenv(env_passphrase_file))
        throw Error(ExitCode::usage, "both INFRA_KEYS_PASSPHRASE and INFRA_KEYS_PASSPHRASE_FILE are set",
                    "unset one of them");
}

SecretBytes from_source(const Source& source) {
    refuse_conflicts(source);
    if (source.file) {
        std::string what = "passphrase file " + *source.file;
        out::detail("passphrase: from {}", what);
        return one_line(from_file(*source.file, what), what);
    }
    if (source.fd) {
        out::detail("passphrase: from file descriptor {}", *source.fd);
        return one_line(read_all(*source.fd, fmt::format("file descriptor {}", *source.fd)),
                        fmt::format("--passphrase-fd {}", *source.fd));
    }
    if (source.command) {
        out::detail("passphrase: from the output of --passphrase-command");
        return one_line(from_command(*source.command), "--passphrase-command's output");
    }
    if (const char* path = std::getenv(env_passphrase_file)) {
        std::string what = fmt::format("passphrase file {} (INFRA_KEYS_PASSPHRASE_FILE)", path);
        out::detail("passphrase: from {}", what);
        return one_line(from_file(path, what), what);
    }
    if (const char* env = std::getenv(env_passphrase)) {
        out::detail("passphrase: from INFRA_KEYS_PASSPHRASE");
        return one_line(SecretBytes(env, env + std::strlen(env)), env_passphrase);
    }
    out::detail("passphrase: from the terminal");
    return from_terminal(source.confirm);
}

// Characters, not bytes: a passphrase in any script gets the same minimum.
size_t utf8_length(const SecretBytes& p) {
    size_t n = 0;
    for (uint8_t b : p) n += (b & 0xC0) != 0x80;
    return n;
}

}  // namespace

SecretBytes one_line(SecretBytes text, const std::string& where) {
    if (!text.empty() && text.back() == '\n') {
        text.pop_back();
        if (!text.empty() && text.back() == '\r') text.pop_back();
    }
    if (std::find(text.begin(), text.end(), '\n') != text.end())
        throw Error(ExitCode::usage, fmt::format("the passphrase from {} has more than one line", where),
                    "a passphrase is one line; only one line ending at its end is removed");
    return text;
}

SecretBytes read(const Source& source) {
    SecretBytes p = from_source(source);
    if (p.empty()) fail(ExitCode::usage, "the passphrase is empty");
    if (utf8_length(p) < minimum_length && !source.allow_weak)
        throw Error(ExitCode::usage,
                    fmt::format("the passphrase is shorter than {} characters", minimum_length),
                    "use a longer one, or pass --allow-weak-passphrase if you must");
    return p;
}

}  // namespace ik::passphrase
