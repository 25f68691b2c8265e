// Random bytes from the operating system (getrandom), for keys, nonces, salts and ids.
#pragma once

#include "util/bytes.h"

namespace ik::crypto {

SecretBytes random_key(size_t size = 32);
Bytes random_bytes(size_t size);

}  // namespace ik::crypto
