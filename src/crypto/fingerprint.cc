#include "crypto/fingerprint.h"

#include <botan/hash.h>
#include <botan/hex.h>

namespace ik::crypto {

std::string root_key_fingerprint(const SecretBytes& key) {
    constexpr std::string_view label = "infra-keys root key fingerprint v1";
    auto hash = Botan::HashFunction::create_or_throw("SHA-256");
    hash->update(reinterpret_cast<const uint8_t*>(label.data()), label.size());
    hash->update(key);
    std::string hex = Botan::hex_encode(hash->final().data(), 16, false);
    return hex.substr(0, 8) + "-" + hex.substr(8, 8) + "-" + hex.substr(16, 8) + "-" + hex.substr(24, 8);
}

}  // namespace ik::crypto
