// An advisory lock (flock) on a directory that keeps two infra-keys processes from changing
// the keys in it at once.
#pragma once

#include <string>

namespace ik {

class LockFile {
public:
    // Locks the directory `path` at once or throws ik::Error(refused) naming the file; never waits.
    explicit LockFile(std::string path);
    ~LockFile();
    LockFile(const LockFile&) = delete;
    LockFile& operator=(const LockFile&) = delete;

private:
    std::string path_;
    int fd_ = -1;
};

}  // namespace ik
