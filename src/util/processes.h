// Which processes have a file open: how infra-keys tells that an Infra server uses a SQLite file.
#pragma once

#include <string>
#include <vector>

namespace ik::processes {

// "pid 4242 (infra)" for every other process with `path` (or its -wal/-journal) open, but other
// runs of infra-keys itself (the same executable file); reads
// /proc, so it sees processes of this host that we may inspect (all of them as root).
std::vector<std::string> with_file_open(const std::string& path);

}  // namespace ik::processes
