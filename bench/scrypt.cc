// Times scrypt (r=8, p=1, as age uses it for passphrase backups) for the work factors (log2 N) on the command line.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <botan/pwdhash.h>

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s WORK_FACTOR [...]   e.g. %s 16 17 18 19\n", argv[0], argv[0]);
        return 2;
    }
    auto family = Botan::PasswordHashFamily::create_or_throw("Scrypt");
    const char passphrase[] = "correct horse battery staple";
    const uint8_t salt[44] = {};
    uint8_t key[32];
    for (int i = 1; i < argc; ++i) {
        int work_factor = std::atoi(argv[i]);
        auto scrypt = family->from_params(size_t{1} << work_factor, 8, 1);
        // Best of three: the first run also pays for faulting in the memory, and the machine is shared.
        std::vector<double> runs;
        for (int r = 0; r < 3; ++r) {
            auto start = std::chrono::steady_clock::now();
            scrypt->derive_key(key, sizeof key, passphrase, sizeof passphrase - 1, salt, sizeof salt);
            runs.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
        }
        std::sort(runs.begin(), runs.end());
        std::printf("scrypt work factor %2d (N=2^%d, %4zu MiB): best %.3f s, median %.3f s\n", work_factor, work_factor,
                    (size_t{128} * 8 << work_factor) >> 20, runs[0], runs[1]);
    }
    return 0;
}
