// Runs a libFuzzer harness over files and directories without libFuzzer (any compiler): how the
// normal test suite keeps every harness building and passing over its seed corpus.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace fs = std::filesystem;

static int replay(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    return 1;
}

int main(int argc, char** argv) {
    int inputs = 0;
    for (int i = 1; i < argc; ++i) {
        if (fs::is_directory(argv[i])) {
            for (const auto& entry : fs::recursive_directory_iterator(argv[i]))
                if (entry.is_regular_file()) inputs += replay(entry.path());
        } else {
            inputs += replay(argv[i]);
        }
    }
    if (inputs == 0) {
        std::fprintf(stderr, "replay: no inputs in the given paths\n");
        return 1;
    }
    std::printf("replay: %d inputs, no finding\n", inputs);
    return 0;
}
