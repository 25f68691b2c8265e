// Times Argon2id derivations (the backup passphrase KDF) for the parameter triples on the command line.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <botan/pwdhash.h>

int main(int argc, char** argv) {
    if (argc < 4 || (argc - 1) % 3 != 0) {
        std::fprintf(stderr, "usage: %s MEMORY_KIB ITERATIONS PARALLELISM [...]\n", argv[0]);
        return 2;
    }
    auto family = Botan::PasswordHashFamily::create_or_throw("Argon2id");
    const char passphrase[] = "correct horse battery staple";
    const uint8_t salt[16] = {};
    uint8_t key[32];
    for (int i = 1; i + 2 < argc; i += 3) {
        size_t memory = std::strtoul(argv[i], nullptr, 10);
        size_t iterations = std::strtoul(argv[i + 1], nullptr, 10);
        size_t parallelism = std::strtoul(argv[i + 2], nullptr, 10);
        auto argon2 = family->from_params(memory, iterations, parallelism);
        // Best of three: the first run also pays for faulting in the memory, and the machine is shared.
        std::vector<double> runs;
        for (int r = 0; r < 3; ++r) {
            auto start = std::chrono::steady_clock::now();
            argon2->derive_key(key, sizeof key, passphrase, sizeof passphrase - 1, salt, sizeof salt);
            runs.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
        }
        std::sort(runs.begin(), runs.end());
        std::printf("Argon2id m=%7zu KiB (%4zu MiB) t=%zu p=%zu: best %.3f s, median %.3f s\n", memory,
                    memory / 1024, iterations, parallelism, runs[0], runs[1]);
    }
    return 0;
}
