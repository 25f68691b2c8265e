// The backup file reader (crypto/backup_file.h): header validation, and opening files whose KDF
// is cheap enough to run per input (a hostile header's cost is bounded by read_header itself).
#include "crypto/backup_file.h"
#include "fuzz.h"

using namespace ik;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view file = fuzz::text_of(data, size);
    fuzz::expect_success_or_refusal([&] {
        backup::Header header = backup::read_header(file);
        fuzz::require(header.kdf.memory_kib <= backup::max_memory_kib && header.kdf.iterations <= backup::max_iterations &&
                          header.kdf.parallelism <= backup::max_parallelism,
                      "read_header bounds the KDF");
        if (header.kdf.memory_kib <= 64 && header.kdf.iterations <= 2 && header.kdf.parallelism <= 2)
            backup::open(file, SecretBytes{'f', 'u', 'z', 'z'});
    });
    return 0;
}
