#include "util/lock_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "util/error.h"

namespace ik {
namespace {

std::string host_name() {
    char name[256] = {};
    if (::gethostname(name, sizeof name - 1) != 0) return "this host";
    return name;
}

// The pid of another process holding a FLOCK on the inode of `path`, from /proc/locks lines such
// as "3: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF" (device numbers in hex); waiters ("->") skipped.
std::optional<long> flock_holder_pid(const std::string& path) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return std::nullopt;
    std::ifstream locks("/proc/locks");
    std::string line;
    while (std::getline(locks, line)) {
        std::istringstream in(line);
        std::string ordinal, type, mode, access, device;
        long pid = 0;
        if (!(in >> ordinal >> type) || type != "FLOCK") continue;
        if (!(in >> mode >> access >> pid >> device) || pid == ::getpid()) continue;
        unsigned major_number = 0, minor_number = 0;
        unsigned long inode = 0;
        if (std::sscanf(device.c_str(), "%x:%x:%lu", &major_number, &minor_number, &inode) != 3) continue;
        if (inode == st.st_ino && major_number == major(st.st_dev) && minor_number == minor(st.st_dev)) return pid;
    }
    return std::nullopt;
}

// flock(2) locks belong to an open file description, so a second open of a directory this process
// has locked would conflict with its own lock: the held ones are shared instead.
struct Held {
    int fd = -1;
    int users = 0;
};
std::map<std::pair<unsigned long, unsigned long>, Held>& held_directories() {
    static std::map<std::pair<unsigned long, unsigned long>, Held> held;
    return held;
}

}  // namespace

LockFile::LockFile(std::string path) : path_(std::move(path)) {
    // Locking the directory that holds the keys leaves nothing behind; the kernel drops the
    // lock if we die, so a killed run never blocks the next one.
    int fd = ::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) fail(ExitCode::provider, "cannot open {} to lock it: {}", path_, std::strerror(errno));
    struct stat st;
    if (::fstat(fd, &st) != 0) {
        int saved = errno;
        ::close(fd);
        fail(ExitCode::provider, "cannot lock {}: {}", path_, std::strerror(saved));
    }
    inode_ = {static_cast<unsigned long>(st.st_dev), static_cast<unsigned long>(st.st_ino)};
    Held& held = held_directories()[inode_];
    if (held.users > 0) {
        ::close(fd);
        ++held.users;
        return;
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int saved = errno;
        ::close(fd);
        held_directories().erase(inode_);
        if (saved == EWOULDBLOCK)
            throw Error(ExitCode::refused,
                        fmt::format("a key change is in progress: {} holds the lock on {}",
                                    holder(path_).value_or("another process"), path_),
                        "wait for it to finish, then run the command again");
        fail(ExitCode::provider, "cannot lock {}: {}", path_, std::strerror(saved));
    }
    held = {fd, 1};
}

LockFile::~LockFile() {
    auto it = held_directories().find(inode_);
    if (it == held_directories().end() || --it->second.users > 0) return;
    ::close(it->second.fd);
    held_directories().erase(it);
}

std::optional<std::string> LockFile::holder(const std::string& path) {
    auto pid = flock_holder_pid(path);
    if (!pid) return std::nullopt;
    std::string command;
    std::ifstream(fmt::format("/proc/{}/comm", *pid)) >> command;
    return fmt::format("pid {}{} on host {}", *pid, command.empty() ? "" : " (" + command + ")", host_name());
}

}  // namespace ik
