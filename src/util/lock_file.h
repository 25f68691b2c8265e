// An advisory lock file (flock) that keeps two infra-keys processes from rotating at once.
#pragma once

#include <string>

namespace ik {

class LockFile {
public:
    // Takes the lock at once or throws ik::Error(refused) naming the file; never waits.
    explicit LockFile(std::string path);
    ~LockFile();
    LockFile(const LockFile&) = delete;
    LockFile& operator=(const LockFile&) = delete;

private:
    std::string path_;
    int fd_ = -1;
};

}  // namespace ik
