#include "util/processes.h"

#include <filesystem>
#include <fstream>
#include <system_error>

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

namespace ik::processes {
namespace fs = std::filesystem;

namespace {

std::string command_name(const fs::path& proc_dir) {
    std::ifstream in(proc_dir / "comm");
    std::string name;
    std::getline(in, name);
    return name;
}

bool has_open(const fs::path& proc_dir, const std::vector<std::string>& targets) {
    std::error_code ec;
    for (const auto& fd : fs::directory_iterator(proc_dir / "fd", ec)) {
        std::string link = fs::read_symlink(fd.path(), ec).string();
        if (ec) continue;
        for (const auto& target : targets)
            if (link == target) return true;
    }
    return false;
}

}  // namespace

// Whether `proc` runs the program this process runs (same file): another infra-keys is no server,
// and the key change locks already keep two of them apart.
bool runs_this_program(const fs::path& proc) {
    struct stat self, other;
    return ::stat("/proc/self/exe", &self) == 0 && ::stat((proc / "exe").c_str(), &other) == 0 &&
           self.st_dev == other.st_dev && self.st_ino == other.st_ino;
}

std::vector<std::string> with_file_open(const std::string& path) {
    std::error_code ec;
    std::string canonical = fs::weakly_canonical(path, ec).string();
    std::vector<std::string> targets = {canonical, canonical + "-wal", canonical + "-journal"};
    std::string self = std::to_string(::getpid());
    std::vector<std::string> found;
    for (const auto& entry : fs::directory_iterator("/proc", ec)) {
        std::string name = entry.path().filename().string();
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos || name == self) continue;
        if (has_open(entry.path(), targets) && !runs_this_program(entry.path())) found.push_back(fmt::format("pid {} ({})", name, command_name(entry.path())));
    }
    return found;
}

}  // namespace ik::processes
