#include "util/lock_file.h"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include "util/error.h"

namespace ik {

LockFile::LockFile(std::string path) : path_(std::move(path)) {
    // The file itself stays behind (it holds nothing); the kernel drops the lock if we die.
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0) fail(ExitCode::provider, "cannot open lock file {}: {}", path_, std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
        int saved = errno;
        ::close(fd_);
        fd_ = -1;
        if (saved == EWOULDBLOCK)
            throw Error(ExitCode::refused, fmt::format("another infra-keys is changing these keys (lock {} is held)", path_),
                        "wait for it to finish, then run the command again");
        fail(ExitCode::provider, "cannot lock {}: {}", path_, std::strerror(saved));
    }
}

LockFile::~LockFile() {
    if (fd_ >= 0) ::close(fd_);
}

}  // namespace ik
