// An advisory lock (flock) on a directory that keeps two infra-keys processes from changing
// the keys in it at once, and who holds it.
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace ik {

class LockFile {
public:
    // Locks the directory `path` at once or throws ik::Error(refused) naming the directory and
    // the holder's pid and host; never waits. Locking a directory this process already holds
    // shares that lock (the key directory and the database's may be one directory).
    explicit LockFile(std::string path);
    ~LockFile();
    LockFile(const LockFile&) = delete;
    LockFile& operator=(const LockFile&) = delete;

    // "pid 1234 on host db-1" when another process holds the lock on directory `path` (read from
    // /proc/locks, so asking takes no lock and never gets in a rotation's way); nullopt when none does.
    static std::optional<std::string> holder(const std::string& path);

private:
    std::string path_;
    std::pair<unsigned long, unsigned long> inode_{};  // (device, inode) of the locked directory
};

}  // namespace ik
