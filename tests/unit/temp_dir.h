// A temporary directory for a unit test, removed with everything in it when the test ends.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

namespace ik::test {

struct TempDir {
    std::filesystem::path path;
    TempDir() {
        char tmpl[] = "/tmp/ik-unit-test-XXXXXX";
        path = ::mkdtemp(tmpl);
    }
    ~TempDir() { std::filesystem::remove_all(path); }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    // Writes `contents` to the file `name` in the directory; returns its path.
    std::string file(const std::string& name, const std::string& contents) const {
        std::string p = (path / name).string();
        std::ofstream(p, std::ios::binary) << contents;
        return p;
    }
};

}  // namespace ik::test
