#include "util/files.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/error.h"

namespace ik::files {
namespace {

std::string errno_text() { return std::strerror(errno); }

class Fd {
public:
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd() { if (fd_ >= 0) ::close(fd_); }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    int get() const { return fd_; }
    int release() { int fd = fd_; fd_ = -1; return fd; }

private:
    int fd_;
};

std::string temp_path_beside(const std::string& path) {
    std::random_device rd;
    return fmt::format("{}.tmp-{:08x}", path, rd());
}

void write_all(int fd, ByteView data, const std::string& path) {
    size_t done = 0;
    while (done < data.size()) {
        ssize_t n = ::write(fd, data.data() + done, data.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail(ExitCode::provider, "cannot write {}: {}", path, errno_text());
        done += static_cast<size_t>(n);
    }
}

// Creates a fully written, fsynced temp file beside `path`; returns its name.
std::string write_temp(const std::string& path, ByteView data, mode_t mode) {
    std::string temp = temp_path_beside(path);
    Fd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
    if (fd.get() < 0) fail(ExitCode::provider, "cannot create {}: {}", temp, errno_text());
    try {
        // O_CREAT honours the umask; the mode must be exact for key files.
        if (::fchmod(fd.get(), mode) != 0) fail(ExitCode::provider, "cannot chmod {}: {}", temp, errno_text());
        write_all(fd.get(), data, temp);
        if (::fsync(fd.get()) != 0) fail(ExitCode::provider, "cannot fsync {}: {}", temp, errno_text());
        if (::close(fd.release()) != 0) fail(ExitCode::provider, "cannot close {}: {}", temp, errno_text());
    } catch (...) {
        ::unlink(temp.c_str());
        throw;
    }
    return temp;
}

}  // namespace

void fsync_directory(const std::string& dir) {
    Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd.get() < 0 || ::fsync(fd.get()) != 0)
        fail(ExitCode::provider, "cannot fsync directory {}: {}", dir, errno_text());
}

std::string directory_of(const std::string& path) {
    auto parent = std::filesystem::path(path).parent_path();
    return parent.empty() ? "." : parent.string();
}

void write_atomic(const std::string& path, ByteView data, mode_t mode) {
    std::string temp = write_temp(path, data, mode);
    if (::rename(temp.c_str(), path.c_str()) != 0) {
        int saved = errno;
        ::unlink(temp.c_str());
        fail(ExitCode::provider, "cannot rename {} to {}: {}", temp, path, std::strerror(saved));
    }
    fsync_directory(directory_of(path));
}

void write_new(const std::string& path, ByteView data, mode_t mode) {
    std::string temp = write_temp(path, data, mode);
    int rc = ::link(temp.c_str(), path.c_str());
    int saved = errno;
    ::unlink(temp.c_str());
    if (rc != 0 && saved == EEXIST) fail(ExitCode::refused, "{} already exists; not overwriting it", path);
    if (rc != 0) fail(ExitCode::provider, "cannot create {}: {}", path, std::strerror(saved));
    fsync_directory(directory_of(path));
}

std::optional<SecretBytes> read_secret(const std::string& path) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) {
        if (errno == ENOENT) return std::nullopt;
        fail(ExitCode::provider, "cannot read {}: {}", path, errno_text());
    }
    SecretBytes out;
    uint8_t buffer[4096];
    for (;;) {
        ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            Botan::secure_scrub_memory(buffer, sizeof buffer);
            fail(ExitCode::provider, "cannot read {}: {}", path, errno_text());
        }
        if (n == 0) break;
        out.insert(out.end(), buffer, buffer + n);
    }
    Botan::secure_scrub_memory(buffer, sizeof buffer);
    return out;
}

std::optional<std::string> read_text(const std::string& path) {
    auto bytes = read_secret(path);
    if (!bytes) return std::nullopt;
    return std::string(bytes->begin(), bytes->end());
}

std::optional<SecretBytes> read_token(const std::string& path) {
    auto bytes = read_secret(path);
    if (!bytes) return std::nullopt;
    auto blank = [](uint8_t c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
    size_t begin = 0, end = bytes->size();
    while (begin < end && blank((*bytes)[begin])) ++begin;
    while (end > begin && blank((*bytes)[end - 1])) --end;
    return SecretBytes(bytes->begin() + begin, bytes->begin() + end);
}

bool exists(const std::string& path) {
    struct stat st;
    return ::lstat(path.c_str(), &st) == 0;
}

bool group_or_world_accessible(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 && (st.st_mode & 0077) != 0;
}

std::string absolute(const std::string& path) {
    return std::filesystem::absolute(path).lexically_normal().string();
}

std::string expand_home(const std::string& path, const std::string& home) {
    if (path == "~") return home;
    if (path.rfind("~/", 0) == 0) return home + path.substr(1);
    return path;
}

}  // namespace ik::files
