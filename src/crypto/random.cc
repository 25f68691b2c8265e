#include "crypto/random.h"

#include <botan/system_rng.h>

namespace ik::crypto {

SecretBytes random_key(size_t size) { return Botan::system_rng().random_vec(size); }

Bytes random_bytes(size_t size) {
    Bytes out(size);
    Botan::system_rng().randomize(out.data(), out.size());
    return out;
}

}  // namespace ik::crypto
