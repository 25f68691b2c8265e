// Byte-buffer vocabulary shared by every layer: plain bytes, and key material that is zeroed on free.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <botan/secmem.h>

namespace ik {

using Bytes = std::vector<uint8_t>;
using SecretBytes = Botan::secure_vector<uint8_t>;
using ByteView = std::span<const uint8_t>;

inline ByteView as_bytes(std::string_view s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
inline std::string_view as_text(ByteView b) {
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}

}  // namespace ik
