#include "util/passphrase.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

#include "util/error.h"
#include "util/files.h"

namespace ik::passphrase {
namespace {

void strip_newline(SecretBytes& p) {
    if (!p.empty() && p.back() == '\n') p.pop_back();
    if (!p.empty() && p.back() == '\r') p.pop_back();
}

SecretBytes read_fd(int fd) {
    SecretBytes out;
    uint8_t buffer[256];
    for (;;) {
        ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail(ExitCode::usage, "cannot read the passphrase from file descriptor {}: {}", fd, std::strerror(errno));
        if (n == 0) break;
        out.insert(out.end(), buffer, buffer + n);
    }
    Botan::secure_scrub_memory(buffer, sizeof buffer);
    return out;
}

// Reads one line from the terminal with echo off, restoring the terminal whatever happens.
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
    while (::read(tty, &c, 1) == 1 && c != '\n') line.push_back(static_cast<uint8_t>(c));
    if (restore) ::tcsetattr(tty, TCSAFLUSH, &saved);
    ::write(tty, "\n", 1);
    return line;
}

SecretBytes from_terminal(bool confirm) {
    int tty = ::open("/dev/tty", O_RDWR | O_CLOEXEC);
    if (tty < 0)
        throw Error(ExitCode::usage, "no passphrase given and no terminal to ask on",
                    "use --passphrase-file FILE, --passphrase-fd N or INFRA_KEYS_PASSPHRASE");
    SecretBytes first = prompt(tty, "Backup passphrase: ");
    if (confirm && prompt(tty, "Repeat passphrase: ") != first) {
        ::close(tty);
        fail(ExitCode::usage, "the two passphrases differ");
    }
    ::close(tty);
    return first;
}

SecretBytes from_source(const Source& source) {
    if (source.file) {
        std::optional<SecretBytes> content;
        try {
            content = files::read_secret(*source.file);
        } catch (const files::FileError& e) {
            throw Error(ExitCode::usage, e.what());  // a passphrase file is part of the command line
        }
        if (!content) fail(ExitCode::usage, "passphrase file {} does not exist", *source.file);
        strip_newline(*content);
        return *content;
    }
    if (source.fd) {
        SecretBytes p = read_fd(*source.fd);
        strip_newline(p);
        return p;
    }
    if (const char* env = std::getenv("INFRA_KEYS_PASSPHRASE")) return SecretBytes(env, env + std::strlen(env));
    return from_terminal(source.confirm);
}

// Characters, not bytes: a passphrase in any script gets the same minimum.
size_t utf8_length(const SecretBytes& p) {
    size_t n = 0;
    for (uint8_t b : p) n += (b & 0xC0) != 0x80;
    return n;
}

}  // namespace

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
