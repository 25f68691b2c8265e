#include "util/lock_file.h"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include "util/error.h"

namespace ik {

LockFile::LockFile(std::string path) : path_(std::move(path)) {
    // Locking the directory that holds the keys leaves nothing behind; the kernel drops the
    // lock if we die, so a killed run never blocks the next one.
    fd_ = ::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd_ < 0) fail(ExitCode::provider, "cannot open {} to lock it: {}", path_, std::strerror(errno));
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
