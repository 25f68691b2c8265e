#include "util/processes.h"

#include <filesystem>
#include <fstream>
#include <system_error>

#include <fmt/format.h>
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

std::vector<std::string> with_file_open(const std::string& path) {
    std::error_code ec;
    std::string canonical = fs::weakly_canonical(path, ec).string();
    std::vector<std::string> targets = {canonical, canonical + "-wal", canonical + "-journal"};
    std::string self = std::to_string(::getpid());
    std::vector<std::string> found;
    for (const auto& entry : fs::directory_iterator("/proc", ec)) {
        std::string name = entry.path().filename().string();
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos || name == self) continue;
        if (has_open(entry.path(), targets)) found.push_back(fmt::format("pid {} ({})", name, command_name(entry.path())));
    }
    return found;
}

}  // namespace ik::processes
