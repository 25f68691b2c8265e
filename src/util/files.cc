#include "util/files.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

namespace ik::files {
namespace {

template <typename... Args>
[[noreturn]] void fail_io(int error_number, fmt::format_string<Args...> format, Args&&... args) {
    throw FileError(fmt::format("{}: {}", fmt::format(format, std::forward<Args>(args)...), std::strerror(error_number)),
                    error_number);
}

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
        if (n < 0) fail_io(errno, "cannot write {}", path);
        done += static_cast<size_t>(n);
    }
}

// Who owns a file written at `path`: the file already there, else the directory it goes into.
struct Ownership {
    uid_t uid;
    gid_t gid;
    mode_t mode;
};

Ownership ownership_for(const std::string& path, mode_t new_mode) {
    struct stat st;
    if (::stat(path.c_str(), &st) == 0) return {st.st_uid, st.st_gid, static_cast<mode_t>(st.st_mode & 07777)};
    if (::stat(directory_of(path).c_str(), &st) == 0) return {st.st_uid, st.st_gid, new_mode};
    return {::geteuid(), ::getegid(), new_mode};
}

// Only root can give a file away; anyone else's files are theirs, as they always were.
void apply_ownership(int fd, const Ownership& owner, const std::string& path) {
    if (::geteuid() == 0 && ::fchown(fd, owner.uid, owner.gid) != 0) fail_io(errno, "cannot chown {}", path);
    // O_CREAT honours the umask; the mode must be exact for key files.
    if (::fchmod(fd, owner.mode) != 0) fail_io(errno, "cannot chmod {}", path);
}

// Creates a fully written, fsynced temp file beside `path` owned as `owner`; returns its name.
std::string write_temp(const std::string& path, ByteView data, const Ownership& owner) {
    std::string temp = temp_path_beside(path);
    Fd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (fd.get() < 0) fail_io(errno, "cannot create {}", temp);
    try {
        apply_ownership(fd.get(), owner, temp);
        write_all(fd.get(), data, temp);
        if (::fsync(fd.get()) != 0) fail_io(errno, "cannot fsync {}", temp);
        if (::close(fd.release()) != 0) fail_io(errno, "cannot close {}", temp);
    } catch (...) {
        ::unlink(temp.c_str());
        throw;
    }
    return temp;
}

}  // namespace

void fsync_directory(const std::string& dir) {
    Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd.get() < 0 || ::fsync(fd.get()) != 0) fail_io(errno, "cannot fsync directory {}", dir);
}

std::string directory_of(const std::string& path) {
    auto parent = std::filesystem::path(path).parent_path();
    return parent.empty() ? "." : parent.string();
}

std::vector<std::string> stale_temp_files_of(const std::string& path) {
    std::string prefix = std::filesystem::path(path).filename().string() + ".tmp-";
    std::vector<std::string> stale;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(directory_of(path), ec)) {
        std::string name = entry.path().filename().string();
        bool ours = name.size() == prefix.size() + 8 && name.compare(0, prefix.size(), prefix) == 0 &&
                    name.find_first_not_of("0123456789abcdef", prefix.size()) == std::string::npos;
        if (ours && entry.is_regular_file(ec)) stale.push_back(entry.path().string());
    }
    std::sort(stale.begin(), stale.end());
    return stale;
}

std::optional<std::string> symlink_target(const std::string& path) {
    std::error_code ec;
    if (!std::filesystem::is_symlink(path, ec)) return std::nullopt;
    auto target = std::filesystem::read_symlink(path, ec);
    if (ec) return std::nullopt;
    if (target.is_relative()) target = std::filesystem::path(directory_of(path)) / target;
    return target.lexically_normal().string();
}

std::string write_atomic(const std::string& path, ByteView data, mode_t mode) {
    std::string target = path;
    for (int hops = 0; hops < 40; ++hops) {  // a chain of links ends at the file; 40 is the kernel's own limit
        auto next = symlink_target(target);
        if (!next) break;
        target = *next;
    }
    std::string temp = write_temp(target, data, ownership_for(target, mode));
    if (::rename(temp.c_str(), target.c_str()) != 0) {
        int saved = errno;
        ::unlink(temp.c_str());
        fail_io(saved, "cannot rename {} to {}", temp, target);
    }
    fsync_directory(directory_of(target));
    return target;
}

void write_new(const std::string& path, ByteView data, mode_t mode) {
    std::string temp = write_temp(path, data, ownership_for(path, mode));
    int rc = ::link(temp.c_str(), path.c_str());
    int saved = errno;
    ::unlink(temp.c_str());
    if (rc != 0 && saved == EEXIST) fail_io(saved, "{} already exists; not overwriting it", path);
    if (rc != 0) fail_io(saved, "cannot create {}", path);
    fsync_directory(directory_of(path));
}

void replace(const std::string& from, const std::string& to) {
    if (symlink_target(to)) {
        auto contents = read_secret(from);
        if (!contents) fail_io(ENOENT, "cannot read {}", from);
        write_atomic(to, *contents);
        if (::unlink(from.c_str()) != 0) fail_io(errno, "cannot delete {}", from);
        fsync_directory(directory_of(from));
        return;
    }
    struct stat st;
    if (::stat(to.c_str(), &st) == 0) {
        Fd fd(::open(from.c_str(), O_RDONLY | O_CLOEXEC));
        if (fd.get() < 0) fail_io(errno, "cannot open {}", from);
        apply_ownership(fd.get(), {st.st_uid, st.st_gid, static_cast<mode_t>(st.st_mode & 07777)}, from);
        if (::fsync(fd.get()) != 0) fail_io(errno, "cannot fsync {}", from);
    }
    if (::rename(from.c_str(), to.c_str()) != 0) fail_io(errno, "cannot move {} to {}", from, to);
    fsync_directory(directory_of(to));
}

std::optional<SecretBytes> read_secret(const std::string& path) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) {
        if (errno == ENOENT) return std::nullopt;
        fail_io(errno, "cannot read {}", path);
    }
    SecretBytes out;
    uint8_t buffer[4096];
    for (;;) {
        ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int saved = errno;
            Botan::secure_scrub_memory(buffer, sizeof buffer);
            fail_io(saved, "cannot read {}", path);
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
